"""API keys and the triggers fired through the JSON API."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from ..inputs import InputValidationError
from ..models import Flow, Trigger
from ..services import IdempotencyConflict, trigger_create, triggers_enqueue
from .models import ApiKey
from .selectors import trigger_accepted_dict

KEY_PREFIX = "fg_"
# fg_ + 8 hex characters (the stored, non-secret prefix) + _ + 43 url-safe characters (256 random bits).
KEY_PATTERN = re.compile(r"^(fg_[0-9a-f]{8})_[A-Za-z0-9_-]{43}$")
LAST_USED_PRECISION = dt.timedelta(minutes=1)  # at most one write a minute per key for "last used"
IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$")
IDEMPOTENCY_KEY_RULE = "An idempotency key is 1 to 255 printable ASCII characters, without spaces at either end."
MAX_BATCH_ITEMS = 1000
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()


def _hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


@sensitive_variables("raw_key")
def api_key_generate_secret(*, api_key: ApiKey) -> str:
    """Gives an unsaved key its prefix and hash; returns the key, which is never stored nor shown again."""
    for _ in range(10):
        prefix = f"{KEY_PREFIX}{secrets.token_hex(4)}"
        if not ApiKey.objects.filter(prefix=prefix).exists():
            break
    raw_key = f"{prefix}_{secrets.token_urlsafe(32)}"
    api_key.prefix, api_key.key_hash = prefix, _hash(raw_key)
    return raw_key


def api_key_create(*, name: str, flows: Sequence[Flow] = (), created_by: AbstractBaseUser | None = None
                   ) -> tuple[ApiKey, str]:
    """A key for `flows`, or for every flow when none are given. Returns it with the key itself (shown once)."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the key a name: who or what uses it."})
    if ApiKey.objects.filter(name=name, revoked_at__isnull=True).exists():
        raise ValidationError({"name": f"An active API key is already named {name!r}."})
    with transaction.atomic():
        api_key = ApiKey(name=name, all_flows=not flows, created_by=created_by)
        raw_key = api_key_generate_secret(api_key=api_key)
        api_key.save()
        api_key.flows.set(flows)
    return api_key, raw_key


def api_key_revoke(*, api_keys: Iterable[ApiKey]) -> int:
    """Revokes the keys at once; the next request with any of them gets 401. Returns how many were active."""
    return ApiKey.objects.filter(pk__in=[k.pk for k in api_keys], revoked_at__isnull=True).update(
        revoked_at=timezone.now())


@sensitive_variables("raw_key")
def api_key_authenticate(*, raw_key: str) -> ApiKey | None:
    """The active key whose hash matches, compared in constant time; notes when it was last used."""
    match = KEY_PATTERN.match(raw_key)
    api_key = ApiKey.objects.filter(prefix=match.group(1)).first() if match else None
    matches = hmac.compare_digest(_hash(raw_key), api_key.key_hash if api_key else _DUMMY_HASH)
    if api_key is None or not matches or not api_key.is_active:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or api_key.last_used_at < now - LAST_USED_PRECISION:
        ApiKey.objects.filter(pk=api_key.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_PRECISION)
        ).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


def idempotency_key_problem(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not IDEMPOTENCY_KEY_PATTERN.match(value):
        return IDEMPOTENCY_KEY_RULE
    return None


def api_trigger_create(*, api_key: ApiKey, flow: Flow, inputs: Any, idempotency_key: str | None = None,
                       enqueue: bool = True) -> Trigger:
    """One trigger fired by an API key: validated, stored, enqueued after commit (unless `enqueue` is False: the
    caller enqueues). `replayed` is set when the idempotency key was used before with the same inputs;
    IdempotencyConflict when with other inputs."""
    return trigger_create(flow=flow, inputs=inputs, source=Trigger.Source.API, actor_label=api_key.name,
                          idempotency_key=idempotency_key, enqueue=enqueue)


def _batch_item(api_key: ApiKey, flow: Flow, item: Any, created: list[int]) -> dict[str, Any]:
    if not isinstance(item, dict) or "inputs" not in item or set(item) - {"inputs", "idempotency_key"}:
        return {"result": "invalid", "errors": {"item": [
            'Each item is an object {"inputs": {...}} with an optional "idempotency_key", nothing else.']}}
    idempotency_key = item.get("idempotency_key")
    if problem := idempotency_key_problem(idempotency_key):
        return {"result": "invalid", "errors": {"idempotency_key": [problem]}}
    try:
        trigger = api_trigger_create(api_key=api_key, flow=flow, inputs=item["inputs"],
                                     idempotency_key=idempotency_key, enqueue=False)
    except InputValidationError as invalid:
        return {"result": "invalid", "errors": invalid.errors}
    except IdempotencyConflict as conflict:
        return {"result": "conflict", "errors": {"idempotency_key": [
            f"Used before with other inputs, for trigger {conflict.existing.pk}."]}}
    if not trigger.replayed:
        created.append(trigger.pk)
    return {"result": "existing" if trigger.replayed else "created", **trigger_accepted_dict(trigger)}


def api_trigger_batch(*, api_key: ApiKey, flow: Flow, items: list[Any]) -> list[dict[str, Any]]:
    """One result per item, in order: created, existing (idempotent replay), invalid or conflict. Valid items
    are accepted whatever the others are; all of them are committed together and enqueued after that."""
    if len(items) > MAX_BATCH_ITEMS:
        raise ValueError(f"At most {MAX_BATCH_ITEMS} items in a batch.")
    created: list[int] = []
    with transaction.atomic():
        results = [{"index": index, **_batch_item(api_key, flow, item, created)} for index, item in enumerate(items)]
        triggers_enqueue(flow=flow, trigger_ids=created)  # after the commit, all at once
    return results
