"""Routing: maps one HTTP request onto the emulator and builds the response bytes."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

from .emulator import INVALID_SESSION, NO_AFTERMATH, NOT_FOUND, Aftermath, Emulator, Fault, Payload, rest_error

JSON_TYPE = "application/json;charset=UTF-8"
DATA_PREFIX = "/services/data/"
TOKEN_PATH = "/services/oauth2/token"
FLOW_ACTIONS = ["actions", "custom", "flow"]
UNAVAILABLE_HTML = b"<html><body>Service Unavailable</body></html>"
UNAVAILABLE_JSON = rest_error("Service unavailable", "SERVER_UNAVAILABLE")
# Answers of the other fail_status values; never a per-input array, so the client cannot tell whether a flow ran.
FAULT_BODIES: dict[int, tuple[bytes, Payload]] = {
    500: (
        b"<html><body>Internal Server Error</body></html>",
        rest_error("An unexpected error occurred. Please include this ErrorId if you contact support: "
                   "1234567890-12345 (-1234567890)", "UNKNOWN_EXCEPTION"),
    ),
    502: (b"<html><body>Bad Gateway</body></html>", rest_error("Bad Gateway", "BAD_GATEWAY")),
    503: (UNAVAILABLE_HTML, UNAVAILABLE_JSON),
    504: (b"<html><body>Gateway Timeout</body></html>", rest_error("Gateway Timeout", "GATEWAY_TIMEOUT")),
}


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()
    # The transport closes the connection instead of writing anything (drop_next).
    drop: bool = False


def json_response(status: int, payload: Payload, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    body = b"" if payload is None else json.dumps(payload).encode("utf-8")
    return Response(status, body, JSON_TYPE, headers)


def _method_not_allowed(method: str, allowed: str) -> Response:
    message = f"HTTP Method '{method}' not allowed. Allowed are {allowed}"
    return json_response(405, rest_error(message, "METHOD_NOT_ALLOWED"))


def _form(query: str, body: bytes) -> dict[str, str]:
    pairs = parse_qsl(query) + parse_qsl(body.decode("utf-8", "replace"))
    return dict(pairs)


def _bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    # Salesforce also accepts the legacy "OAuth" scheme.
    if scheme.lower() not in ("bearer", "oauth"):
        return None
    return token.strip() or None


def dispatch(
    emulator: Emulator,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    authorization: str | None = None,
    host: str = "localhost",
) -> Response:
    """Answer one request. `target` is the request line's path with its query string."""
    path, _, query = target.partition("?")
    if path.startswith("/_emulator/"):
        return _control(emulator, method, path, body, query)
    token = path == TOKEN_PATH
    emulator.enter(token=token)
    try:
        response = _services(emulator, method, path, query, body, authorization, host)
        if emulator.latency_ms:
            time.sleep(emulator.latency_ms / 1000)
        return response
    finally:
        emulator.leave(token=token)


def _fault_response(fault: Fault) -> Response:
    html, payload = FAULT_BODIES[fault.status]
    if fault.html:
        return Response(fault.status, html, "text/html;charset=UTF-8")
    return json_response(fault.status, payload)


def _is_invoke(method: str, path: str) -> bool:
    if method != "POST" or not path.startswith(DATA_PREFIX):
        return False
    parts = path[len(DATA_PREFIX) :].strip("/").split("/")
    return len(parts) == 5 and parts[1:4] == FLOW_ACTIONS


def _services(
    emulator: Emulator, method: str, path: str, query: str, body: bytes, authorization: str | None, host: str
) -> Response:
    if not path.startswith("/services/"):
        return json_response(404, NOT_FOUND)
    fault = emulator.take_fault(token=path == TOKEN_PATH)
    if fault is None:
        return _route(emulator, method, path, query, body, authorization, host)
    if fault.runs_flow and _is_invoke(method, path):
        # The org took the request and ran the flow; its answer is then lost behind the proxy's fault status.
        response = _route(emulator, method, path, query, body, authorization, host)
        if response.drop:
            return response
    return _fault_response(fault)


def _route(
    emulator: Emulator, method: str, path: str, query: str, body: bytes, authorization: str | None, host: str
) -> Response:
    if path == TOKEN_PATH:
        if method != "POST":
            return _method_not_allowed(method, "POST")
        return json_response(*emulator.request_token(_form(query, body), authorization, host))
    if path == "/services/oauth2/revoke":
        if method not in ("POST", "GET"):
            return _method_not_allowed(method, "GET, POST")
        return json_response(*emulator.revoke(_form(query, body).get("token", "")))
    if path.rstrip("/") == "/services/data":
        if method != "GET":
            return _method_not_allowed(method, "GET")
        return json_response(200, emulator.versions())
    if path.startswith(DATA_PREFIX):
        return _rest(emulator, method, path[len(DATA_PREFIX) :], body, authorization)
    return json_response(404, NOT_FOUND)


def _rest(emulator: Emulator, method: str, rest_path: str, body: bytes, authorization: str | None) -> Response:
    """Authenticated REST under /services/data/vNN.N/: auth, usage accounting, version, resource."""
    token = _bearer(authorization)
    if token is None or not emulator.session_valid(token):
        return json_response(401, INVALID_SESSION)
    refusal, usage = emulator.count_api_call()
    headers = (("Sforce-Limit-Info", usage),)
    if refusal is not None:
        return json_response(403, refusal, headers)

    segment, *parts = rest_path.strip("/").split("/")
    error = emulator.version_error(segment)
    if error is not None:
        return json_response(*error, headers)
    version = segment[1:]

    aftermath: Aftermath = NO_AFTERMATH
    if parts == [] or parts == ["limits"]:
        if method != "GET":
            return _method_not_allowed(method, "GET")
        result = emulator.limits() if parts else emulator.resources(version)
    elif parts == FLOW_ACTIONS:
        if method != "GET":
            return _method_not_allowed(method, "GET")
        result = emulator.list_flows(version)
    elif len(parts) == 4 and parts[:3] == FLOW_ACTIONS:
        if method == "GET":
            result = emulator.describe_flow(parts[3])
        elif method == "POST":
            result, aftermath = emulator.invoke(parts[3], body)
        else:
            return _method_not_allowed(method, "GET, POST")
    else:
        result = (404, NOT_FOUND)
    if aftermath.delay_s:
        time.sleep(aftermath.delay_s)  # after the flow ran: past the client's read timeout, the answer is lost
    if aftermath.drop:
        return Response(0, drop=True)
    return json_response(*result, headers)


def _control(emulator: Emulator, method: str, path: str, body: bytes, query: str = "") -> Response:
    """Test hooks: GET state, POST config, POST reset; for benchmarks GET received (when each IndividualId first
    reached an invoke, `?prefix=` filters) and POST forget (clears those records, keeps tokens and counters).
    Never delayed, faulted or counted.

    POST config takes a JSON object of config keys (see `sfemu.emulator.DEFAULT_CONFIG`); the fault switches:
    fail_next N, fail_until EPOCH (every /services/ call answers fail_status: 500, 502, 503 (default) or 504, as
    HTML when fail_html else a JSON REST error; with fault_runs_flow true an invoke call runs its flow first),
    token_fail_next N (503 from the token endpoint), slow_next N / slow_every N (the next N invoke calls, or every
    Nth, run the flow and answer slow_ms later), drop_next N (the next N invoke calls run the flow, then the
    connection closes with no answer), limit_next N / long_txn_limit_next N (the next N authenticated REST calls
    answer 403 REQUEST_LIMIT_EXCEEDED, "TotalRequests Limit exceeded." or "ConcurrentPerOrgLongTxn Limit
    exceeded", and run nothing), daily_limit, token_error, expire_tokens, token_ttl_seconds, latency_ms."""
    route = path.rstrip("/")
    if route == "/_emulator/state" and method == "GET":
        state = emulator.snapshot()
        if dict(parse_qsl(query)).get("individuals") == "0":  # counters only: cheap while a benchmark runs
            del state["by_individual"]
        return json_response(200, state)
    if route == "/_emulator/received" and method == "GET":
        return json_response(200, {"received": emulator.received(dict(parse_qsl(query)).get("prefix", ""))})
    if route == "/_emulator/forget" and method == "POST":
        emulator.forget_individuals()
        return json_response(200, emulator.snapshot())
    if route == "/_emulator/reset" and method == "POST":
        emulator.reset()
        return json_response(200, emulator.snapshot())
    if route == "/_emulator/config" and method == "POST":
        try:
            changes = json.loads(body or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("config body must be a JSON object")
            return json_response(200, emulator.configure(**changes))
        except ValueError as exc:
            return json_response(400, {"error": str(exc)})
    return json_response(404, {"error": f"no control endpoint {method} {path}"})
