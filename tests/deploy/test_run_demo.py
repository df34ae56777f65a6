"""`make run`'s process runner, as its user (or a process manager) stops it: SIGTERM stops every child, as Ctrl-C
does, and nothing is left running."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid: int) -> set[int]:
    """Every process below pid, from /proc (children of children included)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_run_demo_stops_every_process_it_started(tmp_path, stop):
    port, emulator_port = free_port(), free_port()
    env = {
        **os.environ,
        # make run's own embedded defaults, in a folder of this test's
        "DEBUG": "true", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CELERY_BROKER_URL": "filesystem://localhost/", "CACHE_URL": "dbcache://flowgate_cache",
        "FLOWGATE_VAR_DIR": str(tmp_path), "STATIC_ROOT": str(tmp_path / "static"),
    }
    runner = subprocess.Popen([sys.executable, "scripts/run_demo.py", "--port", str(port),
                               "--emulator-port", str(emulator_port)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        while True:
            assert runner.poll() is None, f"run_demo.py exited early:\n{runner.stdout.read()}"
            try:
                if requests.get(f"http://127.0.0.1:{port}/admin/login/", timeout=10).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or busy starting
                pass
            assert time.monotonic() < deadline, "the web process never answered"
            time.sleep(0.5)
        time.sleep(2)  # the worker and beat past their start-up
        children = descendants(runner.pid)
        assert len(children) >= 4, "emulator, web, worker and beat (and their own children)"

        runner.send_signal(stop)

        assert runner.wait(timeout=30) == 0
        time.sleep(0.5)
        assert [pid for pid in children if alive(pid)] == []
    finally:
        for pid in children | (descendants(runner.pid) if runner.poll() is None else set()):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if runner.poll() is None:
            runner.kill()
