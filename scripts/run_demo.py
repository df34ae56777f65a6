"""`make run`'s process runner: the Procfile's release step, then its web, worker and beat processes with the
Salesforce emulator beside them, each logging to a file of its own (var/log/NAME.log), and a banner once the web
process answers. Ctrl-C or SIGTERM stops them all; so does any one of them stopping (its log's end is shown)."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PROCFILE_LINE = re.compile(r"^([a-z][a-z0-9_-]*):\s*(.+)$")
LONG_RUNNING = ("web", "worker", "beat")


class Stop(Exception):
    """SIGTERM or SIGINT (Ctrl-C): the same orderly stop."""


def _stop(signum: int, frame: object) -> None:
    raise Stop


def procfile(path: Path) -> dict[str, str]:
    processes = {}
    for line in path.read_text().splitlines():
        if match := PROCFILE_LINE.match(line.strip()):
            processes[match.group(1)] = match.group(2)
    return processes


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _web_answers(url: str, processes: dict[str, subprocess.Popen], seconds: float = 60) -> bool:
    """Waits for the web process's first answer, so the banner comes when the URLs work; False if a process
    stopped meanwhile (the caller shows which)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and all(p.poll() is None for p in processes.values()):
        try:
            with urllib.request.urlopen(url, timeout=5):
                return True
        except OSError:
            time.sleep(0.3)
    return all(p.poll() is None for p in processes.values())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--emulator-port", type=int, default=8765)
    parser.add_argument("--procfile", type=Path, default=ROOT / "Procfile")
    args = parser.parse_args()
    # Both set here: a process started in the background by a non-interactive shell inherits SIGINT ignored.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    logs = Path(os.environ.get("FLOWGATE_VAR_DIR", ROOT / "var")) / "log"
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        # The Procfile's commands are the virtualenv's (gunicorn, celery, python), as on a server.
        "PATH": f"{Path(PY).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOST": "127.0.0.1", "PORT": str(args.port),
        "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "1"),
        "WORKER_THREADS": os.environ.get("WORKER_THREADS", "4"),
    }
    commands = procfile(args.procfile)
    processes: dict[str, subprocess.Popen] = {}
    try:
        release = subprocess.run(["sh", "-c", commands["release"]], cwd=ROOT, env=env, capture_output=True,
                                 text=True)
        if release.returncode != 0:
            print(f"The Procfile's release step failed:\n{release.stdout}{release.stderr}", file=sys.stderr)
            return release.returncode
        commands = {"emulator": f"exec {PY} -m sfemu --port {args.emulator_port}",
                    **{name: f"exec {commands[name]}" for name in LONG_RUNNING}}
        for name, command in commands.items():
            # exec: the signal reaches the program itself, not a shell waiting on it. A session of their own, so
            # Ctrl-C reaches only this runner, which then stops each of them once, in order.
            with open(logs / f"{name}.log", "ab") as log:
                processes[name] = subprocess.Popen(["sh", "-c", command], cwd=ROOT, env=env, stdout=log,
                                                   stderr=subprocess.STDOUT, start_new_session=True)
        if _web_answers(f"http://127.0.0.1:{args.port}/admin/login/", processes):
            print(
                f"\n  Flowgate is running (Python {sys.version.split()[0]}).\n"
                f"  Admin:               http://127.0.0.1:{args.port}/admin/  (login: admin / admin, unless "
                f"changed)\n"
                f"  Support console:     http://127.0.0.1:{args.port}/console/\n"
                f"  Salesforce emulator: http://127.0.0.1:{args.emulator_port}\n"
                f"  Fire the demo flow:  .venv/bin/python manage.py trigger_flow demo On_Demand_Flow "
                f"IndividualId=003DEMO EmailAddress=you@example.com --wait 10\n"
                f"  Logs:                {_shown(logs)}/web.log, worker.log, beat.log, emulator.log\n"
                f"  Ctrl-C stops everything.\n",
                flush=True,
            )
        while all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
        for name, process in processes.items():
            if process.poll() is not None:
                tail = (logs / f"{name}.log").read_text(errors="replace").splitlines()[-20:]
                print(f"{name} stopped (exit code {process.returncode}); the end of its log:", *tail, sep="\n  ",
                      file=sys.stderr)
        print("Stopping the rest.", file=sys.stderr)
        return 1
    except Stop:
        return 0
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):  # a second one must not cut the stop short
            signal.signal(signum, signal.SIG_IGN)
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
