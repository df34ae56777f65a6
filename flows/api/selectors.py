"""Reads for the JSON API."""

from __future__ import annotations

import re
from typing import Any

from django.db.models import prefetch_related_objects
from django.urls import reverse

from ..models import Flow, Trigger
from ..selectors import flow_with_org, trigger_as_dict
from .models import ApiKey

MAX_ID = 2**63 - 1  # bigint: a larger id in a URL is simply not found
# What an org slug or a flow API name can be at all; anything else (a NUL, a 5,000-character name) is not
# looked up, just not found.
NAME = re.compile(r"[-a-zA-Z0-9_]{1,80}")


def flow_for_api(*, org_slug: str, api_name: str) -> Flow | None:
    if not NAME.fullmatch(org_slug) or not NAME.fullmatch(api_name):
        return None
    flow = flow_with_org(org_slug=org_slug, api_name=api_name)
    if flow is not None:
        prefetch_related_objects([flow], "inputs")  # a batch validates every item against them
    return flow


def api_key_allows(*, api_key: ApiKey, flow_id: int) -> bool:
    """Whether the key may fire the flow and read its triggers."""
    return api_key.all_flows or api_key.flows.filter(pk=flow_id).exists()


def trigger_for_api(*, trigger_id: str) -> Trigger | None:
    if not trigger_id.isascii() or not trigger_id.isdigit() or not 0 < int(trigger_id) <= MAX_ID:
        return None
    return Trigger.objects.select_related("flow__org").filter(pk=int(trigger_id)).first()


def trigger_url(trigger_id: int) -> str:
    return reverse("api:trigger", args=[trigger_id])


def trigger_accepted_dict(trigger: Trigger) -> dict[str, Any]:
    """The answer to a trigger just fired (or replayed by its idempotency key)."""
    return {"id": trigger.pk, "status": trigger.status, "url": trigger_url(trigger.pk)}


def trigger_api_dict(trigger: Trigger) -> dict[str, Any]:
    """GET /api/v1/triggers/{id}: trigger_as_dict's id, status, attempts, outputs and error (with its hint),
    plus its key, times and re-sends."""
    resends = trigger.resends.order_by("id").values_list("pk", flat=True)
    return {
        **trigger_as_dict(trigger),
        "key": str(trigger.key),
        "url": trigger_url(trigger.pk),
        "created_at": trigger.created_at.isoformat(),
        "finished_at": trigger.finished_at.isoformat() if trigger.finished_at else None,
        "resends": [{"id": pk, "url": trigger_url(pk)} for pk in resends],
    }
