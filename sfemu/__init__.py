"""Local Salesforce emulator for one org: OAuth client credentials, flow actions, limits and faults.

Stdlib only. Run `python -m sfemu --port 8765`, or in tests:

    with serve_in_thread() as sf:
        requests.post(f"{sf.url}/services/oauth2/token", data={...})
"""

from .emulator import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET, DEFAULT_FLOW, Emulator
from .server import RunningEmulator, make_server, serve_in_thread

__all__ = [
    "DEFAULT_CONSUMER_KEY",
    "DEFAULT_CONSUMER_SECRET",
    "DEFAULT_FLOW",
    "Emulator",
    "RunningEmulator",
    "make_server",
    "serve_in_thread",
]
