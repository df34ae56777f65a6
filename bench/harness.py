"""The machinery of bench/throughput.py: Flowgate's real processes, load over loopback, and the numbers.

`Stack` runs the Salesforce emulator, a gunicorn web server and Celery workers as real processes against a
PostgreSQL database and two Redis databases of the benchmark's own, and stops them whatever happens (error,
Ctrl-C, SIGTERM). `run_load` drives requests from threads, one requests.Session each, closed loop (as fast as
answers come) or paced at an offered rate; every loop is bounded in count and in time. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
LOG_DIR = ROOT / "var" / "bench"
HOST = "127.0.0.1"
POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
# Fixed, and distinct from every default the tests use (tests: flowgate, Redis 14/15; `make run`: 8000/8765).
ENCRYPTION_KEY = "YmVuY2gtb25seS1rZXktMDEyMzQ1Njc4OWFiY2RlZjA="


# --- numbers ---------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence; NaN when it is empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    clean = sorted(v for v in values if v == v)  # NaN-free
    if not clean:
        return float("nan")
    middle = len(clean) // 2
    return clean[middle] if len(clean) % 2 else (clean[middle - 1] + clean[middle]) / 2


# --- processes -------------------------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def free_ports(count: int, first: int = 8870, last: int = 8890) -> list[int]:
    found = [port for port in range(first, last + 1) if port_is_free(port)][:count]
    if len(found) < count:
        raise RuntimeError(f"Need {count} free ports in {first}-{last} on {HOST}; found {found}.")
    return found


def _children(pid: int) -> list[int]:
    """Every descendant of pid, from /proc (Linux)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        for child in parents.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (its threads included), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def reaped_children_cpu_seconds(pid: int) -> float:
    """CPU time of a process's children that have exited and been waited for (cutime + cstime)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def postmaster_pid() -> int | None:
    """The local PostgreSQL server's main process: a `postgres` whose parent is not one."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
            name, ppid = text[text.index("(") + 1:text.rindex(")")], int(text.rsplit(")", 1)[1].split()[1])
            if name == "postgres":
                with open(f"/proc/{ppid}/stat") as parent:
                    if "(postgres)" not in parent.read():
                        return int(entry)
        except (OSError, ValueError, IndexError):
            continue
    return None


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / CLOCK_TICKS, sum(values) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Process:
    """One command in a session of its own (so Ctrl-C in the terminal reaches only the harness, which then
    stops it), its output in LOG_DIR/NAME.log (var/bench/ unless told otherwise); run as `user` (through
    runuser) when given. The fault tests' Service builds on it."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path = LOG_DIR,
                 user: str | None = None) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self._log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        self._log.flush()
        if user:
            argv = ["runuser", "-u", user, "--", *argv]
        self.popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def pids(self) -> list[int]:
        return [self.pid, *_children(self.pid)] if self.alive() else []

    def rss(self) -> int:
        return sum(rss_bytes(pid) for pid in self.pids())

    def stop(self, timeout: float = 15) -> None:
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(timeout=5)
        else:  # the leader is gone; make sure nothing of its group lingers
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._log.close()


@dataclass
class StackConfig:
    database: str = "flowgate_bench"
    broker_db: int = 4
    cache_db: int = 5
    latency_ms: float = 50
    web_workers: int = 2
    web_threads: int = 8
    worker_processes: int = 2  # one per core: with 1 x 24 threads the GIL caps a worker at one core
    worker_concurrency: int = 12
    worker_pool: str = "threads"
    org_cap: int = 20  # Org.max_concurrent_calls: above the default 10, below Salesforce's 25
    batch_window_ms: int = 200
    batch_max_inputs: int = 200
    celery_app: str = "portal"  # what `celery -A` loads (an experiment may wrap portal's app)
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class Seeded:
    api_key: str
    org: str
    single_flow: str
    single_flow_id: int
    batched_flow: str
    batched_flow_id: int


class Stack:
    """The emulator, the web server and the workers, with their database and Redis databases.

    Use as a context manager: leaving it (normally, on an error, on Ctrl-C or SIGTERM) stops every process.
    """

    def __init__(self, config: StackConfig, log: Callable[[str], None] = print) -> None:
        self.config = config
        self.log = log
        self.emulator_port, self.web_port = free_ports(2)
        self.emulator_url = f"http://{HOST}:{self.emulator_port}"
        self.web_url = f"http://{HOST}:{self.web_port}"
        self.database_url = f"{POSTGRES}/{config.database}"
        self.processes: dict[str, Process] = {}
        self.workers: list[Process] = []
        self.seeded: Seeded | None = None
        self._postmaster: int | None = None
        self._previous_handlers: dict[int, Any] = {}

    # context: always stop everything
    def __enter__(self) -> Stack:
        # SIGINT explicitly too: a shell starting us in the background would otherwise leave it ignored.
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous_handlers[signum] = signal.signal(signum, _raise_interrupt)
        atexit.register(self.stop_all)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop_all()
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "FLOWGATE_"))}
        env.update({
            "DEBUG": "false",
            "SECRET_KEY": "bench-secret-key-not-for-production-0123456789",
            "ALLOWED_HOSTS": HOST,
            "SECURE_SSL_REDIRECT": "false",
            "SESSION_COOKIE_SECURE": "false",
            "CSRF_COOKIE_SECURE": "false",
            "DATABASE_URL": self.database_url,
            "CELERY_BROKER_URL": f"{REDIS}/{self.config.broker_db}",
            "CACHE_URL": f"{REDIS}/{self.config.cache_db}",
            "FLOWGATE_ENCRYPTION_KEYS": ENCRYPTION_KEY,
            "FLOWGATE_EXTRA_SALESFORCE_HOSTS": HOST,
            "FLOWGATE_VAR_DIR": str(LOG_DIR / "var"),
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **self.config.extra_env,
        })
        return env

    # setup
    def prepare(self) -> Seeded:
        self.reset_database()
        self.reset_redis()
        self.start_emulator()
        self.seeded = self.seed()
        self.start_web()
        return self.seeded

    def reset_database(self) -> None:
        name = self.config.database
        if not name.replace("_", "").isalnum():
            raise ValueError(f"Refusing database name {name!r}.")
        started = time.monotonic()
        # A migrated copy, kept as a template while the migrations stay the same: cloning it takes a fraction
        # of a second, migrating several.
        template, stamp = f"{name}_template", _migrations_stamp()
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            found = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                                 (template,)).fetchone()
            if found and found[0] == stamp:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                self.log(f"database {name} cloned from {template} in {time.monotonic() - started:.1f} s")
                return
            conn.execute(f'CREATE DATABASE "{name}"')
        self._manage("migrate", "--no-input", "-v", "0")
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{template}" TEMPLATE "{name}"')
            conn.execute(f"COMMENT ON DATABASE \"{template}\" IS '{stamp}'")
        self.log(f"database {name} migrated in {time.monotonic() - started:.1f} s")

    def reset_redis(self) -> None:
        for db in (self.config.broker_db, self.config.cache_db):
            redis.Redis.from_url(f"{REDIS}/{db}").flushdb()

    def _manage(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=self.env(), capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def seed(self) -> Seeded:
        out = subprocess.run(
            [PY, "-m", "bench.seed", "--emulator-url", self.emulator_url, "--org-cap", str(self.config.org_cap),
             "--batch-window-ms", str(self.config.batch_window_ms),
             "--batch-max-inputs", str(self.config.batch_max_inputs)],
            cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=120,
        )
        if out.returncode:
            raise RuntimeError(f"seeding failed:\n{out.stdout}\n{out.stderr}")
        return Seeded(**json.loads(out.stdout.strip().splitlines()[-1]))

    def start_emulator(self) -> None:
        self.processes["emulator"] = Process(
            "emulator", [PY, "-m", "sfemu", "--host", HOST, "--port", str(self.emulator_port),
                         "--latency-ms", str(self.config.latency_ms)], self.env())
        wait_http(f"{self.emulator_url}/_emulator/state?individuals=0", self.processes["emulator"])

    def start_web(self) -> None:
        c = self.config
        self.processes["web"] = Process("web", [
            PY, "-m", "gunicorn", "portal.wsgi", "--bind", f"{HOST}:{self.web_port}", "--workers",
            str(c.web_workers), "--threads", str(c.web_threads), "--worker-class", "gthread",
            "--keep-alive", "30", "--backlog", "2048", "--log-level", "warning",
        ], self.env())
        wait_http(f"{self.web_url}/api/v1/openapi.json", self.processes["web"])

    def start_workers(self) -> None:
        c = self.config
        for n in range(c.worker_processes):
            argv = [PY, "-m", "celery", "-A", c.celery_app, "worker", "--pool", c.worker_pool, "--concurrency",
                    str(c.worker_concurrency), "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
                    "--without-heartbeat", "-n", f"bench{n}@%h"]
            self.workers.append(Process(f"worker{n}", argv, self.env()))
        # Readiness is shown by the caller's warm-up: a trigger that reaches the emulator went through a worker.
        time.sleep(1.0)
        self.check_alive()

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop(timeout=30)
        self.workers = []

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each part: the web server, the workers, the emulator, this process (the
        load generator and the baselines' clients) and the PostgreSQL backends serving the benchmark's
        database, with the machine's busy and total CPU seconds (so others' share can be told apart)."""
        usage = {"web": sum(cpu_seconds(pid) for pid in self.processes["web"].pids()) if "web" in self.processes
                 else 0.0,
                 "workers": sum(cpu_seconds(pid) for worker in self.workers for pid in worker.pids()),
                 "emulator": sum(cpu_seconds(pid) for pid in self.processes["emulator"].pids())
                 if "emulator" in self.processes else 0.0,
                 "load_generator": cpu_seconds(os.getpid())}
        with self.db() as conn:
            pids = [row[0] for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.config.database,)).fetchall()]
        usage["_postgres"] = {pid: cpu_seconds(pid) for pid in pids}  # type: ignore[assignment]
        if self._postmaster is None:
            self._postmaster = postmaster_pid() or 0
        usage["postgres_closed"] = reaped_children_cpu_seconds(self._postmaster) if self._postmaster else 0.0
        usage["machine_busy"], usage["machine_total"] = machine_cpu_seconds()
        return usage

    def worker_rss(self) -> int:
        return sum(worker.rss() for worker in self.workers)

    def stop_all(self) -> None:
        for process in [*self.workers, *reversed(list(self.processes.values()))]:
            try:
                process.stop()
            except Exception as error:  # keep stopping the others
                print(f"stopping {process.name}: {error}", file=sys.stderr)
        self.workers = []
        self.processes = {}

    def check_alive(self) -> None:
        for process in [*self.processes.values(), *self.workers]:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited with {process.popen.returncode}: see {process.log_path}")

    # the benchmark's database, read directly
    @contextmanager
    def db(self) -> Iterator[psycopg.Connection]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            yield conn

    def purge_queue(self) -> None:
        """Drops the messages waiting in the broker (not its bindings: producers rely on them)."""
        client = redis.Redis.from_url(f"{REDIS}/{self.config.broker_db}")
        for key in client.scan_iter(match="celery*"):
            if client.type(key) == b"list":
                client.delete(key)
        client.delete("unacked", "unacked_index")


def _migrations_stamp() -> str:
    """Changes whenever a migration of any installed app of the project, or Django, does."""
    import hashlib

    import django

    digest = hashlib.sha256(django.__version__.encode())
    for path in sorted(ROOT.glob("*/migrations/*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return f"flowgate-bench {digest.hexdigest()[:16]}"


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def wait_http(url: str, process: Process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited: see {process.log_path}")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{process.name} did not answer {url} within {timeout} s: see {process.log_path}")


# --- the emulator's counters -------------------------------------------------------------------------


class EmulatorClient:
    COUNTERS = ("token_requests", "api_calls", "invoke_calls", "invoked_inputs", "max_in_flight")

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()

    def counters(self) -> dict[str, int]:
        state = self.http.get(f"{self.url}/_emulator/state?individuals=0", timeout=30).json()
        return {name: int(state[name]) for name in self.COUNTERS}

    def received(self, prefix: str) -> dict[str, float]:
        return self.http.get(f"{self.url}/_emulator/received", params={"prefix": prefix}, timeout=60).json()[
            "received"]

    def forget(self) -> None:
        self.http.post(f"{self.url}/_emulator/forget", timeout=30).raise_for_status()


def cpu_delta(before: dict[str, Any], after: dict[str, Any], triggers: int) -> dict[str, float]:
    """CPU milliseconds per trigger of each part between two Stack.cpu() readings, and the share of the
    machine's CPU that was busy and that others (not this benchmark) used meanwhile. PostgreSQL backends count
    while connected at the second reading (the web's and workers' connections persist); `postgres_closed` is
    the CPU of PostgreSQL backends that ended meanwhile, of any database (with Celery's default of a new
    connection per task, mostly the workers' own), counted as this benchmark's."""
    out: dict[str, float] = {}
    ours = 0.0
    for part in ("web", "workers", "emulator", "load_generator", "postgres", "postgres_closed"):
        if part == "postgres":
            used = sum(cpu - before["_postgres"].get(pid, 0.0) for pid, cpu in after["_postgres"].items())
        else:
            used = after[part] - before[part]
        ours += used
        out[f"{part}_ms"] = round(1000 * used / triggers, 3) if triggers else float("nan")
    out["total_ms"] = round(sum(out[f"{p}_ms"] for p in ("web", "workers", "emulator", "postgres",
                                                           "postgres_closed")), 3)
    busy = after["machine_busy"] - before["machine_busy"]
    total = after["machine_total"] - before["machine_total"]
    out["machine_busy_pct"] = round(100 * busy / total, 1) if total else float("nan")
    out["others_busy_pct"] = round(100 * max(0.0, busy - ours) / total, 1) if total else float("nan")
    return out


def counter_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in before if name != "max_in_flight"}


# --- load --------------------------------------------------------------------------------------------


@dataclass
class Sample:
    index: int
    scheduled: float  # epoch seconds the request was due (== sent in a closed loop)
    sent: float
    done: float
    status: int
    body: Any = None

    @property
    def latency(self) -> float:
        return self.done - self.sent


def run_load(send: Callable[[requests.Session, int], tuple[int, Any]], *, count: int, clients: int,
             rate: float | None = None, max_seconds: float = 120, session_factory: Callable[[], Any] | None = None
             ) -> list[Sample]:
    """Calls `send(session, index)` for index 0..count-1 from `clients` threads, each with its own session.

    Closed loop without `rate`: each client sends its next request when its last one was answered. With
    `rate` (per second, all clients together): request i is due at start + i / rate (an open loop; a client
    that falls behind sends at once, and the achieved rate shows it). Stops after `max_seconds` whatever is left.
    """
    samples: list[Sample] = []
    lock = threading.Lock()
    next_index = iter(range(count))
    start = time.time() + 0.05
    deadline = time.monotonic() + max_seconds
    errors: list[BaseException] = []

    def client() -> None:
        session = session_factory() if session_factory else requests.Session()
        mine: list[Sample] = []
        try:
            while time.monotonic() < deadline:
                with lock:
                    index = next(next_index, None)
                if index is None:
                    break
                due = start + index / rate if rate else time.time()
                wait = due - time.time()
                if wait > 0:
                    time.sleep(wait)
                sent = time.time()
                try:
                    status, body = send(session, index)
                except requests.RequestException as error:
                    status, body = 0, repr(error)
                mine.append(Sample(index, due if rate else sent, sent, time.time(), status, body))
        except BaseException as error:  # reported by the caller
            errors.append(error)
        finally:
            with lock:
                samples.extend(mine)
            if isinstance(session, requests.Session):
                session.close()

    threads = [threading.Thread(target=client, name=f"load-{n}", daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()) + 35)
    if errors:
        raise errors[0]
    samples.sort(key=lambda sample: sample.index)
    return samples


# --- profiling (optional: --profile) ---------------------------------------------------------------


class Profiler:
    """py-spy on running processes while a measurement runs: only samples of a thread holding the GIL (`--gil`),
    so the share of samples is the share of the process's Python CPU time. Writes var/bench/profile-NAME.raw
    (collapsed stacks, for flame-graph tools) and a summary of the hottest frames."""

    def __init__(self, name: str, pid: int, seconds: float, rate: int = 100) -> None:
        self.name, self.seconds, self.rate = name, seconds, rate
        self.raw = LOG_DIR / f"profile-{name}.raw"
        spy = Path(PY).with_name("py-spy")
        self.popen = subprocess.Popen(
            [str(spy), "record", "--pid", str(pid), "--format", "raw", "--gil", "--nonblocking", "--rate", str(rate),
             "--duration", str(max(1, int(seconds))), "--output", str(self.raw)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if spy.exists() else None

    def summary(self, top: int = 25) -> dict[str, Any]:
        if self.popen is None:
            return {"error": "py-spy is not installed (pip install -e '.[bench]')"}
        try:
            self.popen.wait(timeout=self.seconds + 30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
        if not self.raw.exists():
            return {"error": "py-spy wrote nothing (permissions?)"}
        total, inclusive = 0, {}
        for line in self.raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            total += int(count)
            for frame in {_frame(f) for f in stack.split(";")}:
                inclusive[frame] = inclusive.get(frame, 0) + int(count)
        hottest = sorted(inclusive.items(), key=lambda item: -item[1])[:top]
        summary = {"gil_busy_pct": round(100 * total / (self.seconds * self.rate), 1), "samples": total,
                   "inclusive_pct": {frame: round(100 * n / total, 1) for frame, n in hottest}}
        (LOG_DIR / f"profile-{self.name}.json").write_text(json.dumps(summary, indent=1))
        return summary


def _frame(text: str) -> str:
    """`func (path/to/file.py:12)` -> `func (file path after site-packages or the project root)`."""
    name, _, where = text.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", f"{ROOT}/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"
