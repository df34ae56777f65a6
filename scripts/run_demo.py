"""Starts the Salesforce emulator, the web server and a Celery worker (with its beat for the sweep) together;
Ctrl-C stops all three."""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--emulator-port", type=int, default=8765)
    args = parser.parse_args()
    var = ROOT / "var"
    var.mkdir(exist_ok=True)
    commands = {
        "emulator": [PY, "-m", "sfemu", "--port", str(args.emulator_port)],
        "web": [PY, "manage.py", "runserver", f"127.0.0.1:{args.port}", "--noreload"],
        "worker": [PY, "-m", "celery", "-A", "portal", "worker", "--beat", "--loglevel", "INFO",
                   "--concurrency", "4", "--schedule", str(var / "celerybeat-schedule")],
    }
    processes = {name: subprocess.Popen(cmd, cwd=ROOT) for name, cmd in commands.items()}
    time.sleep(1.5)
    print(
        f"\n  Flowgate is running: http://127.0.0.1:{args.port}/admin/  (login: admin / admin)\n"
        f"  Support console:     http://127.0.0.1:{args.port}/console/\n"
        f"  Salesforce emulator: http://127.0.0.1:{args.emulator_port}   Ctrl-C stops everything.\n"
        f"  Fire the demo flow:  .venv/bin/python manage.py trigger_flow demo On_Demand_Flow "
        f"IndividualId=003DEMO EmailAddress=you@example.com --wait 10\n",
        flush=True,
    )
    try:
        while all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
        stopped = [name for name, p in processes.items() if p.poll() is not None]
        print(f"{', '.join(stopped)} stopped; stopping the rest.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
