"""`python -m sfemu`: serve one emulated org until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
from types import FrameType

from .emulator import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET, Emulator
from .server import make_server


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sfemu", description="Local Salesforce emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency-ms", type=float, default=0, help="delay added to every Salesforce answer")
    parser.add_argument("--consumer-key", default=DEFAULT_CONSUMER_KEY)
    parser.add_argument("--consumer-secret", default=DEFAULT_CONSUMER_SECRET)
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    emulator = Emulator(args.consumer_key, args.consumer_secret, latency_ms=args.latency_ms)
    server = make_server(args.host, args.port, emulator, verbose=args.verbose)
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"sfemu listening on http://{server.host_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
