"""State of one emulated org (config, tokens, counters) and its Salesforce behaviour.

Everything here is transport-free: methods take parsed request parts and return
`(http_status, json_payload)`; `sfemu.api` maps paths onto them. What the transport must do beyond answering (a
slow answer, a dropped connection) comes back as an `Aftermath`.

Fault switches (config keys) and what the client can conclude from each, as with the real org:

- `fail_next`, `fail_until` (+ `fail_status`, `fail_html`): the edge answers `fail_status` (503 by default)
  before anything runs; with `fault_runs_flow` an invoke call first runs its flow, as a proxy's 502/504 after
  the org took the request. `token_fail_next` is the token endpoint's own 503.
- `slow_next`, `slow_every` (+ `slow_ms`): the flow runs, then the answer waits `slow_ms`: past the client's
  read timeout, the answer is lost although the flow ran.
- `drop_next`: the flow runs, then the connection is closed without an answer (a reset mid-response).
- `limit_next`, `long_txn_limit_next`: 403 REQUEST_LIMIT_EXCEEDED (daily allocation, or too many long requests
  at once) before anything runs.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from .flows import FLOWS, Flow, flow_error

DEFAULT_CONSUMER_KEY = "flowgate-demo-consumer-key"
DEFAULT_CONSUMER_SECRET = "flowgate-demo-consumer-secret"
DEFAULT_FLOW = "On_Demand_Flow"

ORG_ID = "00DEMU000000001"
IDENTITY_URL = "https://login.salesforce.com/id/00DEMU000000001AAA/005EMU000000001AAA"
MIN_VERSION = 58
# Bounds that keep memory flat during long benchmarks.
MAX_TOKENS = 100_000
MAX_INDIVIDUALS = 200_000

TOKEN_ERRORS: dict[str, tuple[str, str]] = {
    "no_client_credentials_user": ("invalid_grant", "no client credentials user enabled"),
    "wrong_domain": ("invalid_grant", "request not supported on this domain"),
    "invalid_client_id": ("invalid_client_id", "client identifier invalid"),
    "invalid_client": ("invalid_client", "invalid client credentials"),
    "unsupported_grant_type": ("unsupported_grant_type", "grant type not supported"),
}

DEFAULT_CONFIG: dict[str, Any] = {
    "latency_ms": 0,
    "fail_next": 0,
    "fail_html": True,
    "fail_until": 0,
    # Faults of the token endpoint only (503), for the next N token requests: REST calls with a valid token work.
    "token_fail_next": 0,
    "token_error": None,
    "token_ttl_seconds": 0,
    "daily_limit": 100_000,
    "fail_prefix": "FAIL",
    "max_version": "66.0",
    "fail_status": 503,
    # Whether a fail_next/fail_until fault on an invoke call comes after its flow ran (a proxy losing the answer).
    "fault_runs_flow": False,
    "slow_next": 0,
    "slow_every": 0,
    "slow_ms": 0,
    "drop_next": 0,
    "limit_next": 0,
    "long_txn_limit_next": 0,
}
FAIL_STATUSES = (500, 502, 503, 504)
COUNTERS = ("token_requests", "api_calls", "invoke_calls", "invoked_inputs", "api_usage", "faults_injected",
            "slow_calls", "dropped_calls", "in_flight", "max_in_flight", "token_in_flight", "token_max_in_flight")

Payload = Any
Result = tuple[int, Payload]


def rest_error(message: str, code: str) -> list[dict[str, str]]:
    return [{"message": message, "errorCode": code}]


NOT_FOUND = rest_error("The requested resource does not exist", "NOT_FOUND")
INVALID_SESSION = rest_error("Session expired or invalid", "INVALID_SESSION_ID")
LIMIT_EXCEEDED = rest_error("TotalRequests Limit exceeded.", "REQUEST_LIMIT_EXCEEDED")
# Same code as the daily limit, told apart only by the message; it clears within seconds.
LONG_TXN_LIMIT_EXCEEDED = rest_error("ConcurrentPerOrgLongTxn Limit exceeded", "REQUEST_LIMIT_EXCEEDED")
NO_BODY = rest_error(
    "The HTTP entity body is required, but this request has no entity body.", "JSON_PARSER_ERROR"
)


def release_label(major: int) -> str:
    """Release name of an API version: 59 is Winter '24, then Spring, Summer, Winter '25, ..."""
    offset = major - 59
    season = ("Winter", "Spring", "Summer")[offset % 3]
    return f"{season} '{24 + offset // 3}"


# --- config validation: each returns the cleaned value or raises ValueError ---


def _non_negative(key: str, value: Any, *, integer: bool = False) -> Any:
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
        raise ValueError(f"{key} must be a non-negative {'integer' if integer else 'number'}")
    return value


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false")
    return value


def _token_error(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if value not in TOKEN_ERRORS:
        raise ValueError(f"{key} must be null or one of {', '.join(TOKEN_ERRORS)}")
    return str(value)


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _fail_status(key: str, value: Any) -> int:
    if isinstance(value, bool) or value not in FAIL_STATUSES:
        raise ValueError(f"{key} must be one of {', '.join(map(str, FAIL_STATUSES))}")
    return int(value)


def _version(key: str, value: Any) -> str:
    match = None if isinstance(value, bool) else re.fullmatch(r"(\d+)(?:\.0)?", str(value))
    if match is None or int(match[1]) < 1:
        raise ValueError(f'{key} must look like "66.0"')
    return f"{int(match[1])}.0"


_VALIDATORS: dict[str, Callable[[str, Any], Any]] = {
    "latency_ms": _non_negative,
    "fail_next": lambda key, value: _non_negative(key, value, integer=True),
    "fail_html": _flag,
    "fail_until": _non_negative,
    "token_fail_next": lambda key, value: _non_negative(key, value, integer=True),
    "token_error": _token_error,
    "expire_tokens": _flag,
    "token_ttl_seconds": _non_negative,
    "daily_limit": lambda key, value: _non_negative(key, value, integer=True),
    "api_usage": lambda key, value: _non_negative(key, value, integer=True),
    "fail_prefix": _text,
    "max_version": _version,
    "fail_status": _fail_status,
    "fault_runs_flow": _flag,
    "slow_next": lambda key, value: _non_negative(key, value, integer=True),
    "slow_every": lambda key, value: _non_negative(key, value, integer=True),
    "slow_ms": _non_negative,
    "drop_next": lambda key, value: _non_negative(key, value, integer=True),
    "limit_next": lambda key, value: _non_negative(key, value, integer=True),
    "long_txn_limit_next": lambda key, value: _non_negative(key, value, integer=True),
}
CONFIG_KEYS = frozenset(_VALIDATORS)


def _validated(changes: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(changes) - CONFIG_KEYS)
    if unknown:
        raise ValueError(f"unknown config key(s): {', '.join(unknown)}")
    return {key: _VALIDATORS[key](key, value) for key, value in changes.items()}


@dataclass(frozen=True, slots=True)
class Fault:
    """An injected fail_next/fail_until/token_fail_next answer, decided with the config of that moment."""

    status: int
    html: bool
    runs_flow: bool


@dataclass(frozen=True, slots=True)
class Aftermath:
    """What happens to an invoke call's answer after its flow ran."""

    delay_s: float = 0
    drop: bool = False


NO_AFTERMATH = Aftermath()


@dataclass(slots=True)
class _Token:
    serial: int
    issued_at: float  # time.monotonic()
    revoked: bool = False


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization[:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    key, sep, secret = decoded.partition(":")
    return (key, secret) if sep else None


def _oauth_error(error: str, description: str) -> Result:
    return 400, {"error": error, "error_description": description}


class Emulator:
    """One Salesforce org. All public methods are thread-safe."""

    def __init__(
        self,
        consumer_key: str = DEFAULT_CONSUMER_KEY,
        consumer_secret: str = DEFAULT_CONSUMER_SECRET,
        latency_ms: float = 0,
    ) -> None:
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self._defaults = {**DEFAULT_CONFIG, **_validated({"latency_ms": latency_ms})}
        self._lock = threading.Lock()
        self.reset()

    # --- control API (also served under /_emulator/) ---

    def reset(self) -> None:
        with self._lock:
            self._config: dict[str, Any] = dict(self._defaults)
            self._counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
            self._by_individual: dict[str, int] = {}
            self._received: dict[str, float] = {}
            self._tokens: dict[str, _Token] = {}
            self._serial = 0
            self._expired_through = 0  # tokens with serial <= this are expired

    def configure(self, **changes: Any) -> dict[str, Any]:
        cleaned = _validated(changes)
        with self._lock:
            for key, value in cleaned.items():
                if key == "expire_tokens":
                    if value:
                        self._expired_through = self._serial
                elif key == "api_usage":
                    self._counters["api_usage"] = value
                else:
                    self._config[key] = value
            return self._snapshot_locked()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self._snapshot_locked()

    def _snapshot_locked(self) -> dict[str, Any]:
        return {
            **self._config,
            **self._counters,
            "by_individual": dict(self._by_individual),
            "tokens_issued": len(self._tokens),
        }

    def enter(self, *, token: bool = False) -> None:
        """A Salesforce request starts: counts requests in flight, and the most ever at once (pacing tests);
        token requests also on their own (the portal makes one at a time per credential)."""
        with self._lock:
            counters = self._counters
            counters["in_flight"] += 1
            counters["max_in_flight"] = max(counters["max_in_flight"], counters["in_flight"])
            if token:
                counters["token_in_flight"] += 1
                counters["token_max_in_flight"] = max(counters["token_max_in_flight"], counters["token_in_flight"])

    def leave(self, *, token: bool = False) -> None:
        with self._lock:
            self._counters["in_flight"] -= 1
            if token:
                self._counters["token_in_flight"] -= 1

    def received(self, prefix: str = "") -> dict[str, float]:
        """When each IndividualId (starting with `prefix`) first reached an invoke: epoch seconds (benchmarks)."""
        with self._lock:
            return {key: at for key, at in self._received.items() if key.startswith(prefix)}

    def forget_individuals(self) -> None:
        """Clears the per-IndividualId records (counts and receive times), keeping tokens, config and counters:
        a long benchmark stays within MAX_INDIVIDUALS without invalidating the tokens its client holds."""
        with self._lock:
            self._by_individual = {}
            self._received = {}

    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self._tokens)

    @property
    def latency_ms(self) -> float:
        return float(self._config["latency_ms"])

    @property
    def fail_html(self) -> bool:
        return bool(self._config["fail_html"])

    # --- request handling ---

    def take_fault(self, *, token: bool = False) -> Fault | None:
        """The fault this request must answer with (outage window, one of the next `fail_next`, or for a token
        request one of the next `token_fail_next`), or None."""
        with self._lock:
            config = self._config
            status = config["fail_status"]
            if config["fail_until"] and time.time() < config["fail_until"]:
                pass
            elif token and config["token_fail_next"] > 0:
                config["token_fail_next"] -= 1
                status = 503  # the token endpoint's own switch predates fail_status and stays a plain outage
            elif config["fail_next"] > 0:
                config["fail_next"] -= 1
            else:
                return None
            self._counters["faults_injected"] += 1
            return Fault(status, bool(config["fail_html"]), bool(config["fault_runs_flow"]))

    def request_token(self, form: dict[str, str], authorization: str | None, host: str) -> Result:
        with self._lock:
            self._counters["token_requests"] += 1
            forced = self._config["token_error"]
        if forced:
            return _oauth_error(*TOKEN_ERRORS[forced])
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(*TOKEN_ERRORS["unsupported_grant_type"])
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if client_id is None:
            client_id, client_secret = _basic_credentials(authorization) or (None, None)
        if client_id != self.consumer_key:
            return _oauth_error(*TOKEN_ERRORS["invalid_client_id"])
        if client_secret != self.consumer_secret:
            return _oauth_error(*TOKEN_ERRORS["invalid_client"])

        token = f"{ORG_ID}!{secrets.token_urlsafe(40)}"
        with self._lock:
            self._serial += 1
            self._tokens[token] = _Token(self._serial, time.monotonic())
            if len(self._tokens) > MAX_TOKENS:
                del self._tokens[next(iter(self._tokens))]  # oldest first: dicts keep order
        return 200, {
            "access_token": token,
            "signature": base64.b64encode(secrets.token_bytes(32)).decode("ascii"),
            "scope": "api",
            "instance_url": f"http://{host}",
            "id": IDENTITY_URL,
            "token_type": "Bearer",
            "issued_at": str(time.time_ns() // 1_000_000),
        }

    def revoke(self, token: str) -> Result:
        with self._lock:
            record = self._tokens.get(token)
            if record is not None and not record.revoked:
                record.revoked = True
                return 200, None
        return 400, {"error": "invalid_token", "error_description": "invalid token"}

    def session_valid(self, token: str) -> bool:
        with self._lock:
            record = self._tokens.get(token)
            if record is None or record.revoked or record.serial <= self._expired_through:
                return False
            ttl = self._config["token_ttl_seconds"]
            return not ttl or time.monotonic() - record.issued_at < ttl

    def count_api_call(self) -> tuple[Payload | None, str]:
        """Count one authenticated REST call; returns (the 403 body refusing it or None, Sforce-Limit-Info value).
        Injected refusals (`limit_next`, then `long_txn_limit_next`) come first and use no allocation."""
        with self._lock:
            counters, config = self._counters, self._config
            counters["api_calls"] += 1
            limit = config["daily_limit"]
            refusal = None
            if config["limit_next"] > 0:
                config["limit_next"] -= 1
                refusal = LIMIT_EXCEEDED
            elif config["long_txn_limit_next"] > 0:
                config["long_txn_limit_next"] -= 1
                refusal = LONG_TXN_LIMIT_EXCEEDED
            if refusal is not None:
                counters["faults_injected"] += 1
            elif counters["api_usage"] < limit:
                counters["api_usage"] += 1
            else:
                refusal = LIMIT_EXCEEDED
            return refusal, f"api-usage={counters['api_usage']}/{limit}"

    def versions(self) -> list[dict[str, str]]:
        top = int(self._config["max_version"].split(".")[0])
        return [
            {"label": release_label(major), "url": f"/services/data/v{major}.0", "version": f"{major}.0"}
            for major in range(MIN_VERSION, top + 1)
        ]

    def version_error(self, segment: str) -> Result | None:
        """Error for the `vNN.N` path segment, or None when the version is served."""
        match = re.fullmatch(r"v(\d+)\.0", segment)
        if match is None or int(match[1]) > int(self._config["max_version"].split(".")[0]):
            return 404, NOT_FOUND
        if int(match[1]) < MIN_VERSION:
            return 410, rest_error("Version retired", "NOT_FOUND")
        return None

    def resources(self, version: str) -> Result:
        base = f"/services/data/v{version}"
        return 200, {"actions": f"{base}/actions", "limits": f"{base}/limits"}

    def limits(self) -> Result:
        with self._lock:
            limit, used = self._config["daily_limit"], self._counters["api_usage"]
        return 200, {
            "DailyApiRequests": {"Max": limit, "Remaining": max(0, limit - used)},
            "DailyAsyncApexExecutions": {"Max": 250_000, "Remaining": 250_000},
        }

    def list_flows(self, version: str) -> Result:
        return 200, {"actions": [flow.action(version) for flow in FLOWS.values()]}

    def describe_flow(self, name: str) -> Result:
        flow = FLOWS.get(name)
        return (200, flow.describe()) if flow else (404, NOT_FOUND)

    def invoke(self, name: str, body: bytes) -> tuple[Result, Aftermath]:
        """Run a flow action; returns its answer and what must happen to that answer (slow_*, drop_next)."""
        with self._lock:
            self._counters["invoke_calls"] += 1
            fail_prefix = self._config["fail_prefix"]
            aftermath = self._aftermath_locked()
        return self._run_flow(name, body, fail_prefix), aftermath

    def _aftermath_locked(self) -> Aftermath:
        config, counters = self._config, self._counters
        every = config["slow_every"]
        # Counted on invoke_calls so that "every Nth" means the same thing to a test reading the counters.
        slow = bool(every) and counters["invoke_calls"] % every == 0
        if config["slow_next"] > 0:
            config["slow_next"] -= 1
            slow = True
        drop = config["drop_next"] > 0
        if drop:
            config["drop_next"] -= 1
        if not (slow or drop):
            return NO_AFTERMATH
        counters["slow_calls"] += slow
        counters["dropped_calls"] += drop
        counters["faults_injected"] += 1
        return Aftermath(config["slow_ms"] / 1000 if slow else 0, drop)

    def _run_flow(self, name: str, body: bytes, fail_prefix: str) -> Result:
        flow = FLOWS.get(name)
        if flow is None:
            return 404, NOT_FOUND
        if not body.strip():
            return 400, NO_BODY
        try:
            payload = json.loads(body)
        except ValueError as exc:
            return 400, rest_error(f"Invalid JSON in request body: {exc}", "JSON_PARSER_ERROR")
        inputs = payload.get("inputs") if isinstance(payload, dict) else None
        if not isinstance(inputs, list) or not all(isinstance(element, dict) for element in inputs):
            return 400, rest_error(
                'The request body must be a JSON object with an "inputs" list of objects.',
                "JSON_PARSER_ERROR",
            )

        self._record_inputs(inputs)
        results = [_interview(flow, element, fail_prefix) for element in inputs]
        if all(result["isSuccess"] for result in results):
            return 200, results
        for result in results:
            if result["isSuccess"]:
                result["errors"] = []
        return 400, results

    def _record_inputs(self, inputs: list[dict[str, Any]]) -> None:
        now = time.time()
        with self._lock:
            self._counters["invoked_inputs"] += len(inputs)
            seen = self._by_individual
            received = self._received
            for element in inputs:
                individual = element.get("IndividualId")
                if individual is None or individual == "":
                    continue
                key = str(individual)
                if key in seen:
                    seen[key] += 1
                elif len(seen) < MAX_INDIVIDUALS:
                    seen[key] = 1
                if key not in received and len(received) < MAX_INDIVIDUALS:
                    received[key] = now


def _interview(flow: Flow, values: dict[str, Any], fail_prefix: str) -> dict[str, Any]:
    """Result element for one flow interview (recorded v63 shape)."""
    errors = flow.input_errors(values)
    individual = values.get("IndividualId")
    if not errors and fail_prefix and isinstance(individual, str) and individual.startswith(fail_prefix):
        errors = [flow_error("UNKNOWN_EXCEPTION", "An error occurred when executing a flow interview.")]
    output = None if errors else {"Flow__InterviewGuid": uuid.uuid4().hex, "Flow__InterviewStatus": "Finished"}
    return {
        "actionName": flow.name,
        "errors": errors or None,
        "invocationId": None,
        "isSuccess": not errors,
        "outcome": None,
        "outputValues": output,
        "sortOrder": -1,
        "version": 1,
    }
