"""Every exchange with Salesforce is recorded here, and only here, after redaction."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from django.conf import settings
from django.db.models import Exists

from ..models import Exchange, Org, Trigger

REDACTED = "[REDACTED]"
SECRET_FIELDS = frozenset(
    {"client_secret", "client_id", "access_token", "refresh_token", "id_token", "signature", "token", "assertion"}
)
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
# Values shorter than this are not scrubbed as literals: they would match innocent text.
MIN_SCRUB_LENGTH = 8


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= MIN_SCRUB_LENGTH and secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_headers(headers: Mapping[str, str], secrets: Iterable[str] = ()) -> dict[str, str]:
    redacted = {}
    for name, value in headers.items():
        if name.lower() in SECRET_HEADERS:
            scheme = value.split(" ", 1)[0] if name.lower().endswith("authorization") and " " in value else ""
            redacted[name] = f"{scheme} {REDACTED}".strip()
        else:
            redacted[name] = scrub(str(value), secrets)
    return redacted


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if k.lower() in SECRET_FIELDS else _redact_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(item) for item in value]
    return value


def redact_body(body: str | bytes | None, content_type: str = "", secrets: Iterable[str] = ()) -> str:
    if not body:
        return ""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    if "x-www-form-urlencoded" in content_type:
        pairs = parse_qsl(text, keep_blank_values=True)
        text = urlencode([(k, REDACTED if k.lower() in SECRET_FIELDS else v) for k, v in pairs], safe="[]")
    else:
        try:
            text = json.dumps(_redact_json(json.loads(text)), ensure_ascii=False)
        except ValueError:
            pass  # not JSON (an HTML error page, say): literal scrubbing below still applies
    return scrub(text, secrets)


def truncate(text: str, limit: int | None = None) -> str:
    limit = settings.FLOWGATE_EXCHANGE_BODY_LIMIT if limit is None else limit
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n…[truncated {len(text) - limit} more characters]"


@dataclass(frozen=True)
class Claim:
    """A dispatch's hold on its triggers: the token its claim wrote on them, the attempt it is (None for a
    micro-batch, whose triggers each have their own), and the time.monotonic() by which its last call must end."""

    token: str
    attempt: int | None
    deadline: float


def record_exchange(
    *,
    org: Org,
    trigger: Trigger | None,
    kind: str,
    batch: list[Trigger] | None = None,
    method: str,
    url: str,
    request_headers: Mapping[str, str],
    request_body: str | bytes | None,
    response_status: int | None = None,
    response_headers: Mapping[str, str] | None = None,
    response_body: str | bytes | None = None,
    network_error: str = "",
    duration_ms: int = 0,
    secrets: Iterable[str] = (),
    classification: str = "",
    claim: Claim | None = None,
) -> Exchange:
    """Saves one exchange, redacted. With a `claim`, the exchange carries its attempt, and is late when none of
    its triggers is still held by that claim: decided in the INSERT itself, as the answer is recorded."""
    secrets = [s for s in secrets if s]
    request_type = next((v for k, v in request_headers.items() if k.lower() == "content-type"), "")
    response_headers = dict(response_headers or {})
    response_type = next((v for k, v in response_headers.items() if k.lower() == "content-type"), "")
    exchange = Exchange.objects.create(
        org=org,
        trigger=trigger,
        kind=kind,
        method=method,
        url=scrub(url, secrets),
        request_headers=redact_headers(request_headers, secrets),
        request_body=truncate(redact_body(request_body, request_type, secrets)),
        response_status=response_status,
        response_headers=redact_headers(response_headers, secrets),
        response_body=truncate(redact_body(response_body, response_type, secrets)),
        network_error=truncate(scrub(network_error, secrets), 2000),
        duration_ms=duration_ms,
        classification=classification,
        attempt=claim.attempt if claim else None,
        late=~Exists(Trigger.objects.filter(
            pk__in=[t.pk for t in batch] if batch else [trigger.pk if trigger else None],
            claim_token=claim.token, status=Trigger.Status.SENDING,
        )) if claim else False,
    )
    if claim:
        del exchange.late  # an expression until read back: loaded from the row if anyone asks
    if batch:
        exchange.batch_triggers.add(*batch)
    return exchange
