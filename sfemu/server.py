"""HTTP transport: a keep-alive ThreadingHTTPServer in front of `api.dispatch`."""

from __future__ import annotations

import socket
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from .api import Response, dispatch, json_response
from .emulator import Emulator, rest_error

MAX_BODY_BYTES = 32 * 1024 * 1024


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: Emulator, verbose: bool = False) -> None:
        super().__init__(address, _Handler)
        self.emulator = emulator
        self.verbose = verbose
        self.host_port = f"{address[0]}:{self.server_address[1]}"
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    # Open keep-alive connections are tracked so that stopping the server really cuts clients off.
    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every response sends Content-Length
    disable_nagle_algorithm = True  # headers and body go out in two writes; don't wait for ACKs
    server_version = "sfemu"
    sys_version = ""
    server: EmulatorServer

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _handle(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            return self._send(json_response(411, rest_error("Content-Length required", "LENGTH_REQUIRED")))
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            return self._send(json_response(413, rest_error("Bad or too large body", "REQUEST_TOO_LARGE")))
        body = self.rfile.read(length) if length else b""
        try:
            response = dispatch(
                self.server.emulator,
                self.command,
                self.path,
                body,
                authorization=self.headers.get("Authorization"),
                host=self.headers.get("Host") or self.server.host_port,
            )
        except Exception:  # an emulator bug must not kill the connection silently
            traceback.print_exc(file=sys.stderr)
            response = json_response(500, rest_error("Emulator internal error", "UNKNOWN_EXCEPTION"))
        if response.drop:
            return self._drop()
        try:
            self._send(response)
        except (BrokenPipeError, ConnectionResetError):
            # Expected after slow_* answers: the client's read timeout gave up on this connection already.
            self.close_connection = True

    def _drop(self) -> None:
        """Close the connection without a byte of answer: the client sees it cut mid-response, after the
        request was taken (unlike a refused connection, which proves nothing ran)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        # Closing is left to the server's shutdown_request, which also forgets the connection.

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)


def make_server(
    host: str = "127.0.0.1", port: int = 0, emulator: Emulator | None = None, verbose: bool = False
) -> EmulatorServer:
    return EmulatorServer((host, port), emulator or Emulator(), verbose)


class RunningEmulator:
    """A server answering on a background thread; `stop()` (or leaving the `with`) shuts it down."""

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.emulator = server.emulator
        self.host_port = server.host_port
        self.url = f"http://{self.host_port}"
        # A short poll interval keeps stop() fast; serve_forever only checks for shutdown between polls.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="sfemu", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.close_connections()
        self.server.server_close()
        self._thread.join()

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve_in_thread(
    host: str = "127.0.0.1", port: int = 0, emulator: Emulator | None = None, *, verbose: bool = False
) -> RunningEmulator:
    return RunningEmulator(make_server(host, port, emulator, verbose))
