from __future__ import annotations

import html
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from http.cookiejar import DefaultCookiePolicy
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from urllib3.util import Timeout

from ..hosts import DisallowedHost, check_url
from ..models import Exchange, ExternalClientApp, Org, OrgUsageSample, Trigger
from ..pacing import call_seconds
from . import tokens
from .errors import (
    FLOW_NOT_FOUND_HINT, HINTS, NOT_RUN, SalesforceError, flow_error_hint, invoke_outcome, is_daily_limit,
    network_failure, token_error_hint,
)
from .recording import Claim, record_exchange

_session: requests.Session | None = None
_session_lock = threading.Lock()


def http_session() -> requests.Session:
    """One pooled session per process; a forked worker child builds its own."""
    global _session
    if _session is None:
        with _session_lock:
            if _session is None:
                session = requests.Session()
                session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
                adapter = requests.adapters.HTTPAdapter(pool_connections=16, pool_maxsize=64, max_retries=0)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                _session = session
    return _session


def _forget_session_after_fork() -> None:
    global _session
    _session = None


os.register_at_fork(after_in_child=_forget_session_after_fork)


@lru_cache(maxsize=256)
def _proxies_for(origin: str) -> dict[str, str]:
    """The proxies the environment (HTTPS_PROXY, NO_PROXY, ...) sets for an origin, worked out once per origin:
    requests would otherwise scan the whole environment on every call (about a millisecond a call)."""
    return requests.utils.resolve_proxies(SimpleNamespace(url=origin), {}, True)


# Invoke answers update the org's API usage at most this often per process: one row written by every call
# would serialize the workers on that row's lock. Other calls (test connection, limits) always write it.
USAGE_NOTE_SECONDS = 1.0
_usage_noted: dict[int, float] = {}
# The dashboard's usage over time: at most one OrgUsageSample per org per 5-minute period (clock-aligned).
USAGE_SAMPLE_SECONDS = 300


@dataclass(frozen=True)
class InvocationResult:
    """One element of an Actions API answer: the outcome of one flow interview."""

    is_success: bool
    outputs: dict[str, Any] | None
    errors: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_element(cls, element: dict[str, Any]) -> InvocationResult:
        errors = [e for e in (element.get("errors") or []) if isinstance(e, dict)]
        outputs = element.get("outputValues")
        return cls(bool(element.get("isSuccess")), outputs if isinstance(outputs, dict) else None, errors)

    @property
    def error_code(self) -> str:
        return str(self.errors[0].get("statusCode") or "FLOW_ERROR") if self.errors else "FLOW_ERROR"

    @property
    def hint(self) -> str:
        return flow_error_hint(self.error_code)

    @property
    def error_message(self) -> str:
        messages = [str(e.get("message") or "") for e in self.errors]
        return "; ".join(m for m in messages if m) or "Salesforce reported the interview failed without a message."


def parse_limit_info(header: str) -> dict[str, tuple[int, int]]:
    """`api-usage=10018/100000; per-app-api-usage=17/250(appName=x)` -> {"api-usage": (10018, 100000), ...}"""
    usage = {}
    for part in header.split(";"):
        match = re.match(r"\s*([\w-]+)=(\d+)/(\d+)", part)
        if match:
            usage[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    return usage


def _per_input_answer(body: Any, inputs: int) -> bool:
    """Whether an invoke's body is Salesforce's per-input result array (one element per input)."""
    return isinstance(body, list) and len(body) == inputs and all(
        isinstance(element, dict) and "isSuccess" in element for element in body
    )


def _json_or_none(response: requests.Response) -> Any:
    """The body as JSON (None when it is not), parsed once per response."""
    if not hasattr(response, "_flowgate_json"):
        try:
            response._flowgate_json = response.json()
        except ValueError:
            response._flowgate_json = None
    return response._flowgate_json


def _error_body(response: requests.Response) -> tuple[str, str]:
    """(errorCode, message) from a REST error body, which may be a JSON array, an object, or HTML."""
    body = _json_or_none(response)
    if body is None:
        text = re.sub(r"<[^>]+>", " ", response.text or "")
        text = html.unescape(re.sub(r"\s+", " ", text)).strip()
        return "", text[:300]
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    if isinstance(body, dict):
        code = body.get("errorCode") or body.get("error") or ""
        message = body.get("message") or body.get("error_description") or ""
        return str(code), str(message)
    return "", str(body)[:300]


class SalesforceClient:
    """Talks to one org. Every request passes `_send`, which checks the host and records the Exchange."""

    def __init__(self, org: Org, app: ExternalClientApp | None = None, *,
                 credential_version: str | None = None, claim: Claim | None = None) -> None:
        """`credential_version`, when the caller read it with its own rows (selectors.trigger_for_dispatch), spares
        reading the External Client App while its token is cached: the app's secrets are only needed to request
        a new token.

        `claim`, for a dispatch: its invokes are recorded with the claim's attempt (and as late when the trigger
        was taken back meanwhile), and no call starts that could not end, at its full timeouts, before the
        claim's deadline; nor does waiting for another process's token request outlast it."""
        self.org = org
        self._app = app
        self._credential_version = credential_version
        self.claim = claim

    # --- public calls -----------------------------------------------------------------------------

    def invoke(self, flow_api_name: str, inputs: list[dict[str, Any]], *, trigger: Trigger | None = None,
               triggers: list[Trigger] | None = None) -> list[InvocationResult]:
        """One Actions call; `triggers` (a micro-batch, one per input) share the call's Exchange."""
        response = self._rest(Exchange.Kind.INVOKE, "POST", f"actions/custom/flow/{flow_api_name}",
                              json_body={"inputs": inputs}, trigger=trigger, batch=triggers, inputs=len(inputs))
        body = _json_or_none(response)
        # Any failing input turns the whole answer into a 400, yet the body still holds one element per input:
        # each element's isSuccess is the truth, not the status.
        if response.status_code in (200, 400) and _per_input_answer(body, len(inputs)):
            return [InvocationResult.from_element(element) for element in body]
        outcome = invoke_outcome(response.status_code, False)
        if response.status_code == 200:
            raise SalesforceError(
                "UNEXPECTED_RESPONSE",
                f"Salesforce answered 200 with {len(body) if isinstance(body, list) else 'no'} result elements for "
                f"{len(inputs)} inputs.", permanent=True, status=200, outcome=outcome,
            )
        raise self._error(response, Exchange.Kind.INVOKE, outcome=outcome)

    def describe_flow(self, flow_api_name: str) -> dict[str, Any]:
        return self._rest_json(Exchange.Kind.DESCRIBE, f"actions/custom/flow/{flow_api_name}")

    def list_flows(self) -> list[dict[str, Any]]:
        body = self._rest_json(Exchange.Kind.LIST, "actions/custom/flow")
        return [a for a in body.get("actions", []) if isinstance(a, dict)] if isinstance(body, dict) else []

    def limits(self) -> dict[str, Any]:
        return self._rest_json(Exchange.Kind.LIMITS, "limits/")

    def list_versions(self) -> list[dict[str, Any]]:
        """The versions the org offers (no token needed, not counted against limits)."""
        response = self._send(Exchange.Kind.VERSIONS, "GET", f"{self._my_domain()}/services/data/", headers={})
        if response.status_code != 200:
            raise self._error(response, Exchange.Kind.VERSIONS)
        body = _json_or_none(response)
        return [v for v in body if isinstance(v, dict)] if isinstance(body, list) else []

    def fetch_token(self) -> tokens.Token:
        """A token for this org, from the shared cache or one token request (waited for only while a call could
        still follow it within the claim's deadline)."""
        wait_until = self.claim.deadline - call_seconds() if self.claim else None
        return tokens.get_token_at(self._token_key(), self._request_token, wait_until=wait_until)

    # --- internals --------------------------------------------------------------------------------

    @property
    def app(self) -> ExternalClientApp:
        if self._app is None:
            self._app = ExternalClientApp.objects.filter(org=self.org, is_active=True).first()
            if self._app is None:
                raise SalesforceError(
                    "NO_CLIENT_APP", f"The org {self.org.slug} has no active External Client App.", permanent=True,
                    hint="Add the External Client App's consumer key and secret on the org's page.",
                )
            self._app.org = self.org  # the same row: saves reading it again for the token's cache key
        return self._app

    def _token_key(self) -> str:
        version = self._credential_version if self._app is None else None
        if version is None:
            version = self.app.credential_version
        return tokens.token_key(version, self.org.my_domain_url)

    def _my_domain(self) -> str:
        try:
            return check_url(self.org.my_domain_url)
        except DisallowedHost as error:
            raise SalesforceError("DISALLOWED_HOST", str(error), permanent=True,
                                  hint="Fix the org's My Domain URL.") from None

    def _request_token(self) -> tokens.Token:
        key, secret = self.app.consumer_key.reveal(), self.app.consumer_secret.reveal()
        response = self._send(
            Exchange.Kind.TOKEN, "POST", f"{self._my_domain()}/services/oauth2/token",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            data={"grant_type": "client_credentials", "client_id": key, "client_secret": secret},
            secrets=(key, secret),
        )
        body = _json_or_none(response)
        if response.status_code == 200 and isinstance(body, dict) and body.get("access_token"):
            instance_url = str(body.get("instance_url") or self._my_domain())
            try:
                instance_url = check_url(instance_url)
            except DisallowedHost as error:
                raise SalesforceError(
                    "DISALLOWED_INSTANCE_URL", f"The token response's instance_url was refused: {error}",
                    permanent=True, hint="The org's My Domain URL must be the org's own Salesforce API host.",
                ) from None
            return tokens.Token(str(body["access_token"]), instance_url)
        if response.status_code == 400 and isinstance(body, dict) and "error" in body:
            error, description = str(body["error"]), str(body.get("error_description") or "")
            raise SalesforceError(error, description or error, permanent=True, status=400,
                                  hint=token_error_hint(error, description))
        raise self._error(response, Exchange.Kind.TOKEN)

    def _rest(self, kind: str, method: str, path: str, *, json_body: Any = None,
              trigger: Trigger | None = None, batch: list[Trigger] | None = None,
              inputs: int | None = None) -> requests.Response:
        for attempt in (1, 2):
            token = self.fetch_token()
            url = f"{token.instance_url}/services/data/{self.org.api_version}/{path}"
            headers = {"Authorization": f"Bearer {token.access_token}", "Accept": "application/json"}
            body = None
            if json_body is not None:
                headers["Content-Type"] = "application/json"
                body = json.dumps(json_body, ensure_ascii=False).encode()
            response = self._send(kind, method, url, headers=headers, data=body, trigger=trigger, batch=batch,
                                  secrets=(token.access_token,), inputs=inputs)
            self._note_limits(response, throttle=kind == Exchange.Kind.INVOKE)
            if response.status_code == 401 and attempt == 1 and _error_body(response)[0] == "INVALID_SESSION_ID":
                # The session ended (Salesforce gives tokens no expiry): one new token, one more try.
                tokens.forget_token_at(self._token_key(), token)
                continue
            return response
        return response

    def _rest_json(self, kind: str, path: str) -> Any:
        response = self._rest(kind, "GET", path)
        if response.status_code != 200:
            raise self._error(response, kind)
        return _json_or_none(response)

    def _send(self, kind: str, method: str, url: str, *, headers: dict[str, str], data: Any = None,
              trigger: Trigger | None = None, batch: list[Trigger] | None = None,
              secrets: tuple[str, ...] = (), inputs: int | None = None) -> requests.Response:
        """One HTTP call, recorded. `inputs` (an invoke's input count) makes the Exchange say whether the flow
        ran, did not, or may have."""
        try:
            check_url(url)
        except DisallowedHost as error:
            raise SalesforceError("DISALLOWED_HOST", str(error), permanent=True) from None
        cap = call_seconds()
        if self.claim is not None and time.monotonic() + cap > self.claim.deadline:
            raise SalesforceError(
                "LEASE_EXHAUSTED", "Not enough of this attempt's lease was left for another call to Salesforce.",
                permanent=False,
            )
        request = requests.Request(method, url, headers=headers, data=data).prepare()
        parts = urlsplit(url)
        proxies = dict(_proxies_for(f"{parts.scheme}://{parts.netloc}"))
        started = time.monotonic()
        response: requests.Response | None = None
        failure: SalesforceError | None = None
        network_error = ""
        try:
            # `total` caps the whole call, so the claim's lease can be worked out from the timeouts.
            response = http_session().send(request, allow_redirects=False, proxies=proxies, timeout=Timeout(
                connect=settings.FLOWGATE_HTTP_CONNECT_TIMEOUT, read=settings.FLOWGATE_HTTP_READ_TIMEOUT, total=cap,
            ))
        except requests.RequestException as error:
            network_error = f"{type(error).__name__}: {error}"
            failure = network_failure(error, url, flow_call=inputs is not None)
        duration_ms = int((time.monotonic() - started) * 1000)
        classification = ""
        if inputs is not None:
            if response is not None:
                classification = invoke_outcome(response.status_code, response.status_code in (200, 400) and (
                    _per_input_answer(_json_or_none(response), inputs)))
            else:
                classification = failure.outcome if failure else NOT_RUN
        record_exchange(
            org=self.org, trigger=trigger, batch=batch, kind=kind, method=method, url=url,
            request_headers=dict(request.headers), request_body=request.body,
            response_status=response.status_code if response is not None else None,
            response_headers=dict(response.headers) if response is not None else None,
            response_body=response.content if response is not None else None,
            network_error=network_error, duration_ms=duration_ms, secrets=secrets,
            classification=classification, claim=self.claim if inputs is not None else None,
        )
        if failure is not None:
            raise failure
        return response

    def _error(self, response: requests.Response, kind: str, *, outcome: str = NOT_RUN) -> SalesforceError:
        status = response.status_code
        code, message = _error_body(response)
        code = code or f"HTTP_{status}"
        message = message or response.reason or f"HTTP {status}"
        if 300 <= status < 400:
            location = response.headers.get("Location", "")
            return SalesforceError("REDIRECT", f"Salesforce redirected to {location or 'elsewhere'}; not followed.",
                                   permanent=True, status=status)
        transient = status >= 500 or status == 429 or code == "REQUEST_LIMIT_EXCEEDED"
        hint = HINTS.get(code, "")
        if status == 404 and kind in (Exchange.Kind.INVOKE, Exchange.Kind.DESCRIBE):
            hint = FLOW_NOT_FOUND_HINT
        elif status == 410:
            hint = HINTS["API_VERSION_RETIRED"]
        elif code == "REQUEST_LIMIT_EXCEEDED" and not is_daily_limit(code, message):
            hint = HINTS["CONCURRENT_LIMIT"]
        return SalesforceError(code, message, permanent=not transient, status=status, hint=hint, outcome=outcome)

    def _note_limits(self, response: requests.Response, *, throttle: bool = False) -> None:
        usage = parse_limit_info(response.headers.get("Sforce-Limit-Info", "")).get("api-usage")
        if not usage:
            return
        now, last = time.monotonic(), _usage_noted.get(self.org.pk)
        if throttle and last is not None and now - last < USAGE_NOTE_SECONDS:
            return
        _usage_noted[self.org.pk] = now
        seen_at = timezone.now()
        Org.objects.filter(pk=self.org.pk).update(
            api_usage_used=usage[0], api_usage_max=usage[1], api_usage_seen_at=seen_at
        )
        # One sample per org per period, whichever process sees it first: cache.add is atomic in the shared
        # cache, so a busy org costs one cache call here, not a row per call.
        period = int(seen_at.timestamp()) // USAGE_SAMPLE_SECONDS
        if cache.add(f"flowgate:usage-sample:{self.org.pk}:{period}", 1, timeout=2 * USAGE_SAMPLE_SECONDS):
            OrgUsageSample.objects.create(org_id=self.org.pk, used=usage[0], max=usage[1], seen_at=seen_at)

