"""Fault-injection fixtures: real processes, really killed.

A test builds a stack of separate processes, each with the environment pointing at the test database, a Redis
broker of our own and the suite's Redis cache: the Salesforce emulator (`python -m sfemu`), the web server
(gunicorn), Celery workers (threads pool) and beat. Our own `redis-server` is the broker so a test can stop or
freeze it without touching the Redis other test runs on this machine share, and so the suite's in-process worker
(tests/conftest.py, on the suite's broker) never takes these tasks. Every process runs in its own session and its
whole process group is killed at teardown, whatever the test's outcome; every wait is bounded.

Timings are short (sweep every second, retries after 1, 2, 4 ... seconds, 3 s read timeout) so faults resolve
within seconds; the figures each test measures are printed at the end of the run ("fault figures").
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import requests
from django.db import connection
from django.test import override_settings

from bench.harness import Process
from flows.api.services import api_key_create
from flows.models import Flow, Trigger
from flows.pacing import lease_seconds
from sfemu import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET
from tests.conftest import make_flow, make_org

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
BIN = Path(PY).parent
PORTS = range(8900, 8921)  # loopback ports set aside for these tests' servers
BROKER_PORTS = range(6390, 6400)
# Debian's PostgreSQL server programs (15 on these machines), newest first, for the throwaway instance.
PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin/initdb"), default=Path("/usr/lib/postgresql/15/bin/initdb"),
             key=lambda found: int(found.parts[-3]) if found.parts[-3].isdigit() else 0).parent

# What every process of a stack runs with. Short timings make faults resolve in seconds; DATABASE_CONN_MAX_AGE is
# production's default because the health-checked persistent connections are part of what recovers from faults.
FAST_ENV = {
    "FLOWGATE_SWEEP_INTERVAL": "1",
    "FLOWGATE_SWEEP_GRACE": "3",
    "FLOWGATE_RETRY_DELAYS": "1,2,4,8,16,30",
    "FLOWGATE_HTTP_READ_TIMEOUT": "3",
    "FLOWGATE_HTTP_CONNECT_TIMEOUT": "1",
    "FLOWGATE_LIMIT_PAUSE_SECONDS": "5",
    "DATABASE_CONN_MAX_AGE": "60",
    "FLOWGATE_EXTRA_SALESFORCE_HOSTS": "127.0.0.1",
    "LOG_LEVEL": "INFO",
    "PYTHONUNBUFFERED": "1",
}


# --- figures: printed in the terminal summary so `make test` shows them --------------------------------------

FIGURES: dict[str, dict[str, Any]] = {}


def pytest_terminal_summary(terminalreporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("fault figures")
    for test, figures in FIGURES.items():
        terminalreporter.write_line(f"{test}: {json.dumps(figures, default=str)}")


@pytest.fixture
def figures(request) -> dict[str, Any]:
    """A dict the test fills with what it measured; shown at the end of the run, even when the test fails."""
    found: dict[str, Any] = {}
    FIGURES[request.node.name] = found
    return found


# --- waiting, ports ------------------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.2, what: str = "") -> Any:
    """The predicate's first truthy value, or AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout:.0f} s for {what or predicate}")
        time.sleep(interval)


_handed_out: set[int] = set()


def free_port(candidates: range = PORTS) -> int:
    """A loopback port from the set-aside range that nothing listens on; not handed out twice in one run while
    others remain (a server just stopped may linger a moment)."""
    for fresh_only in (True, False):
        for port in candidates:
            if fresh_only and port in _handed_out:
                continue
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port in {candidates}")


# --- processes -----------------------------------------------------------------------------------------------


class Service(Process):
    """One process (and its children) in its own session, logging to a file (bench.harness.Process), with what
    fault injection needs: signals to its whole group, SIGKILL, and its log."""

    def signal(self, signum: int) -> None:
        try:
            os.killpg(self.popen.pid, signum)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL to the whole group: no cleanup, no goodbye, as when a machine or the OOM killer takes it."""
        self.signal(signal.SIGKILL)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a zombie the kernel will reap
            pass
        self._log.close()

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def wait_for_log(self, needle: str, timeout: float) -> None:
        def found() -> bool:
            if not self.alive():
                raise AssertionError(f"{self.name} exited ({self.popen.returncode}):\n{self.tail()}")
            return needle in self.text()

        try:
            wait_until(found, timeout=timeout, interval=0.1, what=f"{self.name} to log {needle!r}")
        except AssertionError as error:
            raise AssertionError(f"{error}\n--- {self.name} log ---\n{self.tail()}") from None


class EmulatorProcess:
    """The emulator process, driven over its control endpoints."""

    def __init__(self, service: Service, port: int) -> None:
        self.service = service
        self.url = f"http://127.0.0.1:{port}"

    def state(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/_emulator/state", timeout=10).json()

    def configure(self, **changes: Any) -> dict[str, Any]:
        response = requests.post(f"{self.url}/_emulator/config", json=changes, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()


class RedisBroker:
    """A redis-server of our own, without persistence: stopping it loses every message, as a broker crash can."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.port = free_port(BROKER_PORTS)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.service: Service | None = None

    def start(self) -> None:
        self.service = Service(f"broker-{time.monotonic_ns()}", [
            "redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
        ], dict(os.environ), self.log_dir)
        wait_until(self.ping, timeout=15, interval=0.05, what="the broker to answer")

    def ping(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def ensure_running(self) -> None:
        if self.service is None or not self.service.alive():
            self.start()
        self.service.signal(signal.SIGCONT)  # a test may have left it frozen

    def flush(self) -> None:
        redis.Redis(port=self.port, socket_timeout=5).flushall()

    def queue_length(self, queue: str = "celery") -> int:
        return redis.Redis(port=self.port, socket_timeout=5).llen(queue)

    def stop(self) -> None:
        if self.service is not None:
            self.service.kill()


@pytest.fixture(scope="session")
def broker(tmp_path_factory) -> Iterator[RedisBroker]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is needed for the fault tests (apt-get install redis-server)")
    running = RedisBroker(tmp_path_factory.mktemp("broker"))
    try:
        yield running
    finally:
        running.stop()


class Stack:
    """The portal's processes for one test. `database_url` is the test database unless given."""

    def __init__(self, log_dir: Path, broker: RedisBroker, database_url: str, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.broker = broker
        self.services: list[Service] = []
        var_dir = log_dir / "var"  # the beat schedule and embedded state: this test's own
        var_dir.mkdir(exist_ok=True)
        self.env = {**os.environ, **FAST_ENV, "DATABASE_URL": database_url, "CELERY_BROKER_URL": broker.url,
                    "FLOWGATE_VAR_DIR": str(var_dir), **env}
        self.api_url = ""
        self.api_service: Service | None = None

    def number(self, name: str) -> float:
        """A setting as the stack's processes read it (the test process keeps the suite's own)."""
        return float(self.env[name])

    def delays(self) -> list[float]:
        return [float(delay) for delay in self.env["FLOWGATE_RETRY_DELAYS"].split(",")]

    def lease_seconds(self) -> float:
        """How long the stack's workers hold a SENDING claim before the sweep may take it back."""
        with override_settings(FLOWGATE_HTTP_CONNECT_TIMEOUT=self.number("FLOWGATE_HTTP_CONNECT_TIMEOUT"),
                               FLOWGATE_HTTP_READ_TIMEOUT=self.number("FLOWGATE_HTTP_READ_TIMEOUT")):
            return lease_seconds()

    def _start(self, name: str, argv: list[str]) -> Service:
        service = Service(name, argv, self.env, self.log_dir)
        self.services.append(service)
        return service

    def emulator(self, latency_ms: float = 0) -> EmulatorProcess:
        port = free_port()
        service = self._start("emulator", [PY, "-m", "sfemu", "--port", str(port), "--latency-ms", str(latency_ms)])
        emulator = EmulatorProcess(service, port)

        def up() -> bool:
            try:
                return bool(emulator.state())
            except requests.RequestException:
                if not service.alive():
                    raise AssertionError(f"the emulator exited:\n{service.tail()}") from None
                return False

        wait_until(up, timeout=20, interval=0.1, what="the emulator")
        return emulator

    def api(self, *, workers: int = 2, threads: int = 8) -> str:
        port = free_port()
        self.api_service = self._start("api", [
            str(BIN / "gunicorn"), "portal.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
            "--worker-class", "gthread", "--threads", str(threads), "--timeout", "60", "--graceful-timeout", "2",
            "--log-level", "info",
        ])
        self.api_url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return requests.get(f"{self.api_url}/api/v1/openapi.json", timeout=5).status_code == 200
            except requests.RequestException:
                if not self.api_service.alive():
                    raise AssertionError(f"gunicorn exited:\n{self.api_service.tail()}") from None
                return False

        wait_until(up, timeout=60, interval=0.2, what="the API")
        return self.api_url

    def api_worker_pids(self) -> set[int]:
        """gunicorn's worker processes (the master's children): a restarted worker gets a new pid."""
        assert self.api_service is not None
        master = self.api_service.pid
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        return {int(pid) for pid in children}

    def worker(self, name: str = "a", *, concurrency: int = 8, queues: str = "", wait: bool = True) -> Service:
        """A worker on every queue, as production starts them, or on `queues` only (comma-separated)."""
        service = self._start(f"worker-{name}", [
            PY, "-m", "celery", "-A", "portal", "worker", "--pool", "threads", "--concurrency", str(concurrency),
            "--hostname", f"faults-{name}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
            "--without-heartbeat", *(["--queues", queues] if queues else []),
        ])
        if wait:
            service.wait_for_log(" ready.", timeout=60)
        return service

    def beat(self) -> Service:
        service = self._start("beat", [
            PY, "-m", "celery", "-A", "portal", "beat", "--loglevel", "INFO", "--max-interval", "1",
            "--schedule", str(self.log_dir / "celerybeat-schedule"),
        ])
        service.wait_for_log("beat: Starting", timeout=60)
        return service

    def close(self) -> None:
        for service in reversed(self.services):
            service.kill()

    def sweep_counts(self) -> Counter:
        """What the sweeps did, summed over every worker's log: requeued (messages sent again) and recovered
        (SENDING triggers whose lease ran out)."""
        totals: Counter = Counter()
        for service in self.services:
            if not service.name.startswith("worker-"):
                continue
            for line in service.text().splitlines():
                if "flows.sweep_triggers" in line and "succeeded" in line and "{" in line:
                    try:
                        result = json.loads(line[line.index("{"):].replace("'", '"'))
                    except ValueError:
                        continue
                    totals.update({key: value for key, value in result.items() if isinstance(value, int)})
        return totals


def database_url(settings_dict: dict[str, Any]) -> str:
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    user = settings_dict.get("USER") or "postgres"
    return f"postgres://{user}@{host}:{port}/{settings_dict['NAME']}"


@pytest.fixture
def make_stack(transactional_db, tmp_path, broker) -> Iterator[Callable[..., Stack]]:
    """Builds stacks on the test database (or on `database=`), each process killed at teardown.

    Set up after the test database (committed rows, seen by every process) so the processes die before
    pytest-django flushes it.
    """
    stacks: list[Stack] = []

    def build(*, database: str | None = None, **env: str) -> Stack:
        database = database or database_url(connection.settings_dict)
        broker.ensure_running()
        broker.flush()  # no message of an earlier test reaches this one's workers
        stack = Stack(tmp_path, broker, database, env)
        stacks.append(stack)
        return stack

    try:
        yield build
    finally:
        for stack in stacks:
            stack.close()
        broker.ensure_running()  # a test that stopped or froze it leaves it usable for the next


# --- a throwaway PostgreSQL that a test may stop and start ---------------------------------------------------


class ThrowawayPostgres:
    """A PostgreSQL instance of our own (initdb in a temporary folder), never the shared cluster: stopping it
    fails no one else's tests. Run as the postgres user when we are root, as PostgreSQL refuses root."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.user = "postgres" if os.geteuid() == 0 else None
        # Under /tmp, not pytest's 0700 tmp folder, which the postgres user could not enter.
        self.dir = Path(tempfile.mkdtemp(prefix="flowgate-faults-pg-"))
        self.data = self.dir / "data"
        self.port = free_port(range(5440, 5460))
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/flowgate_faults_pg"
        self.service: Service | None = None
        if self.user:
            shutil.chown(self.dir, self.user)
        self._run([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync",
                   "-E", "UTF8", "--locale", "C.UTF-8"])

    def _run(self, argv: list[str]) -> None:
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        # fsync off: a test database; the restart under test is a clean shutdown and start, not a crash.
        self.service = Service(f"postgres-{time.monotonic_ns()}", [
            str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.dir),
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200",
        ], dict(os.environ), self.log_dir, user=self.user)
        wait_until(self.ready, timeout=30, interval=0.1, what="the throwaway PostgreSQL")

    def ready(self) -> bool:
        try:
            with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                                 connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        """A fast shutdown, as `pg_ctl restart -m fast` does: clients are cut off, work in progress rolled back."""
        assert self.service is not None
        # To the postmaster itself: runuser, in between when we are root, would not pass the signal on.
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        try:
            os.kill(postmaster, signal.SIGINT)
            wait_until(lambda: not Path(f"/proc/{postmaster}").exists(), timeout=30, interval=0.05,
                       what="PostgreSQL to shut down")
        finally:
            self.service.kill()

    def sql(self, query: str, dbname: str = "flowgate_faults_pg") -> list[tuple]:
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=dbname,
                             autocommit=True) as connection:
            cursor = connection.execute(query)
            return cursor.fetchall() if cursor.description else []

    def close(self) -> None:
        if self.service is not None:
            self.service.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def throwaway_postgres(tmp_path) -> Iterator[ThrowawayPostgres]:
    """Started, with the portal's database migrated; killed and removed at teardown."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL's server programs are needed in {PG_BIN} (apt-get install postgresql)")
    postgres = ThrowawayPostgres(tmp_path)
    try:
        postgres.start()
        postgres.sql("CREATE DATABASE flowgate_faults_pg", dbname="postgres")
        subprocess.run([PY, "manage.py", "migrate", "--no-input"], cwd=ROOT, check=True, capture_output=True,
                       timeout=300, env={**os.environ, "DATABASE_URL": postgres.url,
                                         "FLOWGATE_VAR_DIR": str(tmp_path / "var")})
        yield postgres
    finally:
        postgres.close()


def seed_elsewhere(database: str, emulator_url: str) -> str:
    """`seed` in a process of its own against another database; returns the API key."""
    code = ("import django; django.setup(); from tests.faults.conftest import seed; "
            f"print(seed({emulator_url!r})[1])")
    done = subprocess.run([PY, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DATABASE_URL": database, "DJANGO_SETTINGS_MODULE": "portal.settings"})
    return done.stdout.strip().splitlines()[-1]


# --- data and API clients ------------------------------------------------------------------------------------


def seed(emulator_url: str, *, slug: str = "emu", max_concurrent_calls: int = 10) -> tuple[Flow, str]:
    """An org on the emulator, its On_Demand_Flow, and an API key for it (returned raw)."""
    org = make_org(slug=slug, url=emulator_url, key=DEFAULT_CONSUMER_KEY, secret=DEFAULT_CONSUMER_SECRET)
    org.max_concurrent_calls = max_concurrent_calls
    org.save()
    flow = make_flow(org)
    _, raw_key = api_key_create(name=f"faults-{slug}", flows=[flow])
    return flow, raw_key


class ApiClient:
    """A keep-alive session firing the flow through the JSON API."""

    def __init__(self, api_url: str, key: str, org_slug: str = "emu", flow: str = "On_Demand_Flow") -> None:
        self.base = f"{api_url}/api/v1/flows/{org_slug}/{flow}/triggers"
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {key}"})

    def fire(self, individual: str, *, idempotency_key: str | None = None, timeout: float = 30
             ) -> requests.Response:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.session.post(self.base, json={"inputs": {"IndividualId": individual}}, headers=headers,
                                 timeout=timeout)

    def fire_batch(self, individuals: list[str], timeout: float = 120) -> list[int]:
        response = self.session.post(f"{self.base}/batch", timeout=timeout,
                                     json={"items": [{"inputs": {"IndividualId": i}} for i in individuals]})
        assert response.status_code == 207, response.text[:500]
        results = response.json()["results"]
        assert {r["result"] for r in results} == {"created"}
        return [r["id"] for r in results]


def statuses(ids: list[int] | None = None) -> Counter:
    triggers = Trigger.objects.all() if ids is None else Trigger.objects.filter(pk__in=ids)
    return Counter(triggers.values_list("status", flat=True))


def all_final(ids: list[int]) -> bool:
    return not Trigger.objects.filter(pk__in=ids).exclude(status__in=Trigger.FINAL).exists()


def duplicates(by_individual: dict[str, int]) -> dict[str, int]:
    return {individual: count for individual, count in by_individual.items() if count > 1}
