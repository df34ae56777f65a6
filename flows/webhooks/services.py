"""Shopify deliveries: verify, record, map, fire. One validation and a couple of inserts, the trigger enqueued
after commit: the answer never waits for Salesforce.

A delivery that cannot fire now (its flow or org inactive, the org paused) is held, its body kept whole; an
unmappable one keeps its whole body too. Both are replayed later through the same path as a live delivery."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from ..api.http import InvalidJson, is_storable, parse_json, storable_text
from ..crypto import DecryptionError
from ..inputs import InputValidationError, caller_inputs
from ..models import Flow, Trigger
from ..services import IdempotencyConflict, trigger_create
from .mapping import map_payload, parse_expression, resolve
from .models import ShopifyTopic, ShopifyWebhook, WebhookDelivery

logger = logging.getLogger(__name__)

Outcome = WebhookDelivery.Outcome
HeldFor = WebhookDelivery.HeldFor
REPLAYABLE = (Outcome.HELD, Outcome.UNMAPPABLE)
REPLAY_BATCH = 200
SIGNATURE_HEADER = "x-shopify-hmac-sha256"
REDACTED = "[REDACTED]"
REDACTED_HEADERS = {SIGNATURE_HEADER, "authorization", "proxy-authorization", "cookie"}
MAX_HEADERS = 60
MAX_HEADER_VALUE = 1000
DEFAULT_BODY_LIMIT = 65536  # characters of a delivery's body kept for the console
CONTACT_EMAIL = parse_expression("email | contact_email | customer.email")


@dataclass(frozen=True)
class Receipt:
    """The answer to a delivery."""

    status: int
    body: dict[str, Any]


def shopify_signature_check(*, webhook: ShopifyWebhook, body: bytes, signature: str | None) -> str | None:
    """Which secret signed the raw body ("current" or "rotation"), or None. Constant-time comparisons."""
    given = (signature or "").strip().encode("utf-8", "replace")
    signed_with = None
    for label, secret in ((WebhookDelivery.SignedWith.CURRENT, webhook.secret),
                          (WebhookDelivery.SignedWith.ROTATION, webhook.rotation_secret)):
        if secret is None:
            continue
        expected = base64.b64encode(hmac.new(secret.reveal().encode(), body, hashlib.sha256).digest())
        if hmac.compare_digest(expected, given) and given and signed_with is None:
            signed_with = label
    return signed_with


def shop_allowed(*, webhook: ShopifyWebhook, shop_domain: str) -> bool:
    allowed = webhook.allowed_shop_domains
    return "*" in allowed or (bool(shop_domain) and shop_domain.lower() in allowed)


def _header(headers: Mapping[str, str], name: str, max_length: int) -> str:
    return storable_text(str(headers.get(name, "")).strip())[:max_length]


def _recorded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    recorded = {}
    for name, value in list(headers.items())[:MAX_HEADERS]:
        name = storable_text(str(name))[:100]
        recorded[name] = REDACTED if name.lower() in REDACTED_HEADERS else storable_text(str(value), MAX_HEADER_VALUE)
    return recorded


def _extract_for_search(delivery: WebhookDelivery, payload: Any) -> None:
    """Order number, order name and email, so the console finds a delivery by what a customer tells support."""
    if not isinstance(payload, dict):
        return
    number = payload.get("order_number")
    if isinstance(number, (int, str)) and not isinstance(number, bool):
        delivery.order_number = storable_text(str(number))[:40]
    if isinstance(name := payload.get("name"), str):
        delivery.order_name = storable_text(name)[:80]
    if isinstance(email := resolve(CONTACT_EMAIL, payload), str):
        delivery.email = storable_text(email.strip().lower())[:254]


def _describe(errors: Mapping[str, list[str]]) -> str:
    return "; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items())


def _event_key(delivery: WebhookDelivery) -> str | None:
    """Deliveries of one merchant action share X-Shopify-Event-Id: with it, the same event fires a flow once,
    even through two subscriptions."""
    if not delivery.event_id:
        return None
    key = f"shopify:{delivery.shop_domain}:{delivery.topic}:{delivery.event_id}"
    return key if len(key) <= 255 else f"shopify:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def _fire(delivery: WebhookDelivery, route: ShopifyTopic, payload: dict[str, Any]) -> None:
    """Sets the delivery's outcome, reason and trigger."""
    flow = route.flow
    inputs, problems = map_payload(route.mapping, caller_inputs(flow), payload, reserved=flow.trigger_id_input)
    if problems:
        delivery.outcome, delivery.reason = Outcome.UNMAPPABLE, _describe(problems)
        return
    if not is_storable(inputs):
        delivery.outcome = Outcome.UNMAPPABLE
        delivery.reason = "A mapped value holds a NUL character or an unpaired surrogate, which cannot be sent."
        return
    try:
        trigger = trigger_create(flow=flow, inputs=inputs, source=Trigger.Source.WEBHOOK,
                                 actor_label=delivery.webhook.name, idempotency_key=_event_key(delivery))
    except InputValidationError as invalid:
        delivery.outcome, delivery.reason = Outcome.UNMAPPABLE, _describe(invalid.errors)
        return
    except IdempotencyConflict as conflict:
        delivery.outcome, delivery.trigger = Outcome.REPLAYED, conflict.existing
        delivery.reason = (f"Event {delivery.event_id} already fired trigger {conflict.existing.pk}, with other "
                           f"inputs (the mapping or the flow changed since); nothing was sent again.")
        return
    delivery.trigger = trigger
    if trigger.replayed:
        delivery.outcome = Outcome.REPLAYED
        delivery.reason = (f"Event {delivery.event_id} already fired trigger {trigger.pk} (another delivery of the "
                           f"same event); nothing was sent again.")
    else:
        delivery.outcome, delivery.reason = Outcome.TRIGGERED, ""


def _payload(body: bytes) -> tuple[dict[str, Any] | None, str]:
    """The payload, or None and why not."""
    try:
        payload = parse_json(body)
    except InvalidJson as error:
        return None, str(error)
    return (payload, "") if isinstance(payload, dict) else (None, "The body is not a JSON object.")


def _route(delivery: WebhookDelivery) -> ShopifyTopic | None:
    return (ShopifyTopic.objects.select_related("flow__org").prefetch_related("flow__inputs")
            .filter(webhook_id=delivery.webhook_id, topic=delivery.topic).first())


def _hold(flow: Flow) -> tuple[str, str] | None:
    """Why a delivery to this flow cannot fire now (held_for, reason), or None when it can."""
    org = flow.org
    inactive = ([f"flow {flow}"] if not flow.is_active else []) + ([f"org {org.slug}"] if not org.is_active else [])
    if inactive:
        what = (f"The {inactive[0]} is" if len(inactive) == 1
                else f"The flow {flow} and its org {org.slug} are")
        them = "it" if len(inactive) == 1 else "them"
        return HeldFor.INACTIVE, (f"{what} inactive: activate {them}, then replay this delivery from the console or "
                                  f"with replay_deliveries.")
    now = timezone.now()
    if org.paused_until and org.paused_until > now:
        until = org.paused_until.astimezone(dt.timezone.utc)
        when = f"{until:%H:%M}" if until.date() == now.astimezone(dt.timezone.utc).date() else f"{until:%Y-%m-%d %H:%M}"
        return HeldFor.PAUSED, (f"The org {org.slug} is paused until {when} UTC after Salesforce's daily API limit; "
                                f"it is replayed automatically when the pause ends.")
    return None


def _process(delivery: WebhookDelivery, route: ShopifyTopic | None, payload: dict[str, Any] | None,
             problem: str) -> None:
    """Sets the outcome, reason, held_for and trigger: for a live delivery and for a replay alike."""
    delivery.held_for = ""
    if route is None:
        delivery.outcome = Outcome.IGNORED
        delivery.reason = (f"No flow is mapped to the topic {delivery.topic!r}: map it in the webhook's settings, "
                           f"or remove the subscription in Shopify.")
    elif payload is None:
        delivery.outcome, delivery.reason = Outcome.UNMAPPABLE, problem
    # Checked before mapping: an inactive flow is not a problem with the payload, and replaying fixes it.
    elif hold := _hold(route.flow):
        delivery.outcome = Outcome.HELD
        delivery.held_for, delivery.reason = hold
    else:
        _fire(delivery, route, payload)


def _keep_body(delivery: WebhookDelivery, body: bytes, text: str) -> None:
    """The whole body when it may be replayed (held, unmappable); otherwise cut for the console. The request itself
    is already limited to FLOWGATE_MAX_BODY_BYTES."""
    if delivery.outcome in REPLAYABLE:
        delivery.body = text
    else:
        delivery.body = storable_text(text, int(getattr(settings, "FLOWGATE_DELIVERY_BODY_LIMIT", DEFAULT_BODY_LIMIT)))
    # Not only cut: a body that was not UTF-8 or held a NUL is stored altered, and a replay would send other data.
    delivery.body_truncated = delivery.body.encode("utf-8") != body


def _duplicate(delivery: WebhookDelivery) -> Receipt:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(duplicates=F("duplicates") + 1,
                                                          last_duplicate_at=timezone.now())
    return Receipt(200, {"delivery": delivery.pk, "outcome": "duplicate", "trigger": delivery.trigger_id})


def _earlier(webhook: ShopifyWebhook, shopify_webhook_id: str) -> WebhookDelivery | None:
    return (WebhookDelivery.objects.filter(webhook=webhook, shopify_webhook_id=shopify_webhook_id)
            .exclude(outcome=Outcome.REJECTED).first())


def webhook_delivery_receive(*, webhook: ShopifyWebhook, headers: Mapping[str, str], body: bytes) -> Receipt:
    """Answers one delivery to /hooks/shopify/{slug}.

    401, nothing stored: the signature is missing or matches neither secret. 400, nothing stored: a signed
    request without X-Shopify-Topic or X-Shopify-Webhook-Id (Shopify always sends both). 403, recorded as
    rejected: the shop is not allowed. 200 otherwise, so Shopify does not retry what a retry cannot fix: a
    duplicate (nothing created), a topic with no flow, a payload that cannot fill the flow's inputs (recorded
    with the reason and the whole body), a delivery held because its flow cannot fire now (recorded whole, to be
    replayed), or a trigger queued.
    """
    named = {str(name).lower(): value for name, value in headers.items()}
    try:
        signed_with = shopify_signature_check(webhook=webhook, body=body, signature=named.get(SIGNATURE_HEADER))
    except DecryptionError:
        logger.error("Shopify webhook %s: its signing secret cannot be decrypted.", webhook.slug)
        return Receipt(503, {"error": "This webhook's signing secret cannot be read; an admin must fix it."})
    if signed_with is None:
        return Receipt(401, {"error": "The X-Shopify-Hmac-Sha256 signature is missing or does not match."})
    missing = [name for name in ("X-Shopify-Topic", "X-Shopify-Webhook-Id")
               if not str(named.get(name.lower(), "")).strip()]
    if missing:
        return Receipt(400, {"error": f"Missing header: {', '.join(missing)}."})

    delivery = WebhookDelivery(
        webhook=webhook, signed_with=signed_with,
        shopify_webhook_id=_header(named, "x-shopify-webhook-id", 255),
        event_id=_header(named, "x-shopify-event-id", 255),
        topic=_header(named, "x-shopify-topic", 120),
        shop_domain=_header(named, "x-shopify-shop-domain", 255).lower(),
        api_version=_header(named, "x-shopify-api-version", 32),
        triggered_at=_header(named, "x-shopify-triggered-at", 64),
        headers=_recorded_headers(headers),
        body_bytes=len(body),
    )
    text = storable_text(body.decode("utf-8", "replace"))
    payload, problem = _payload(body)
    _extract_for_search(delivery, payload)
    if not shop_allowed(webhook=webhook, shop_domain=delivery.shop_domain):
        delivery.outcome = Outcome.REJECTED
        delivery.reason = (f"The shop {delivery.shop_domain or '(no X-Shopify-Shop-Domain)'} is not among this "
                           f"webhook's allowed shop domains.")
        _keep_body(delivery, body, text)
        delivery.save()
        return Receipt(403, {"error": "This shop may not deliver to this webhook.", "delivery": delivery.pk})
    if earlier := _earlier(webhook, delivery.shopify_webhook_id):
        return _duplicate(earlier)
    try:
        with transaction.atomic():
            _process(delivery, _route(delivery), payload, problem)
            _keep_body(delivery, body, text)
            delivery.save()
    except IntegrityError:  # the same delivery, at the same moment, got in first
        if earlier := _earlier(webhook, delivery.shopify_webhook_id):
            return _duplicate(earlier)
        raise
    return Receipt(200, {"delivery": delivery.pk, "outcome": delivery.outcome, "trigger": delivery.trigger_id})


# --- replay ------------------------------------------------------------------------------------------

TRIGGERED, STILL_UNMAPPABLE, SKIPPED = "triggered", "still_unmappable", "skipped"


@dataclass(frozen=True)
class ReplayResult:
    """What one replay came to: `triggered` (a new trigger), `still_unmappable`, or `skipped` with the reason
    (still held, the event already fired, a body not kept whole, not held or unmappable)."""

    delivery_id: int
    result: str
    reason: str = ""
    trigger_id: int | None = None


@dataclass
class ReplayCounts:
    replayed: int = 0
    triggered: int = 0
    still_unmappable: int = 0
    skipped: int = 0
    trigger_ids: list[int] = field(default_factory=list)
    skips: list[tuple[int, str]] = field(default_factory=list)  # (delivery id, reason), the first MAX_SKIPS

    MAX_SKIPS = 50

    def add(self, result: ReplayResult) -> None:
        self.replayed += 1
        setattr(self, result.result, getattr(self, result.result) + 1)
        if result.result == TRIGGERED and result.trigger_id is not None:
            self.trigger_ids.append(result.trigger_id)
        elif result.result == SKIPPED and len(self.skips) < self.MAX_SKIPS:
            self.skips.append((result.delivery_id, result.reason))

    def as_dict(self) -> dict[str, int]:
        return {"replayed": self.replayed, "triggered": self.triggered, "still_unmappable": self.still_unmappable,
                "skipped": self.skipped}


class _DryRun(Exception):
    """Rolls a dry run back: it takes the very path of a replay, and nothing it wrote is kept."""

    def __init__(self, result: ReplayResult) -> None:
        super().__init__("dry run")
        self.result = result


def delivery_replay(*, delivery: WebhookDelivery, actor_label: str, dry_run: bool = False) -> ReplayResult:
    """Runs a held or unmappable delivery again: the current route's mapping on the stored body, then the live
    path (held again while the flow cannot fire; the event's idempotency key, so an event that fired once never
    fires twice). The row is updated in place. With dry_run, the same outcome, nothing written or enqueued."""
    return _replay(delivery.pk, actor_label, dry_run)


def _replay(pk: int, actor_label: str, dry_run: bool) -> ReplayResult:
    try:
        with transaction.atomic():
            result = _replay_locked(pk, actor_label)
            if dry_run:
                raise _DryRun(result)
    except _DryRun as rolled_back:
        return ReplayResult(rolled_back.result.delivery_id, rolled_back.result.result, rolled_back.result.reason)
    return result


def _replay_locked(pk: int, actor_label: str) -> ReplayResult:
    # The row lock is the claim: a second replay of the same delivery waits here, then finds it no longer held
    # or unmappable, so two replays at once fire at most one trigger, even for a delivery without an event id.
    delivery = (WebhookDelivery.objects.select_for_update(of=("self",)).select_related("webhook")
                .filter(pk=pk).first())
    if delivery is None:
        return ReplayResult(pk, SKIPPED, "It no longer exists.")
    if delivery.outcome not in REPLAYABLE:
        return ReplayResult(pk, SKIPPED, f"Its outcome is {delivery.get_outcome_display()!r}: only held and "
                                         f"unmappable deliveries are replayed.", delivery.trigger_id)
    if delivery.body_truncated:
        return ReplayResult(pk, SKIPPED, f"Its body ({delivery.body_bytes} bytes) was not kept whole, so it cannot be "
                                         f"replayed: fire the flow from the console with the order's data instead.")
    route = _route(delivery)
    if route is None:
        return ReplayResult(pk, SKIPPED, f"No flow is mapped to the topic {delivery.topic!r} now: map it in the "
                                         f"webhook's settings, then replay.")
    payload, problem = _payload(delivery.body.encode("utf-8"))
    _process(delivery, route, payload, problem)
    delivery.replayed_at, delivery.replayed_by = timezone.now(), actor_label[:150]
    delivery.save(update_fields=["outcome", "reason", "held_for", "trigger", "replayed_at", "replayed_by"])
    if delivery.outcome == Outcome.TRIGGERED:
        return ReplayResult(pk, TRIGGERED, "", delivery.trigger_id)
    if delivery.outcome == Outcome.UNMAPPABLE:
        return ReplayResult(pk, STILL_UNMAPPABLE, delivery.reason)
    return ReplayResult(pk, SKIPPED, delivery.reason, delivery.trigger_id)  # held again, or the event fired already


def _ids_in_batches(deliveries: QuerySet[WebhookDelivery] | Iterable[WebhookDelivery],
                    limit: int | None) -> Iterator[int]:
    """Delivery ids, oldest first; a queryset is read REPLAY_BATCH ids at a time, however many it holds."""
    if not isinstance(deliveries, QuerySet):
        ids = sorted({delivery.pk for delivery in deliveries})
        yield from ids[:limit] if limit is not None else ids
        return
    ids_of = deliveries.order_by("pk").values_list("pk", flat=True)
    last, given = 0, 0
    while limit is None or given < limit:
        batch = list(ids_of.filter(pk__gt=last)[:REPLAY_BATCH])
        for pk in batch[: None if limit is None else limit - given]:
            given += 1
            yield pk
        if len(batch) < REPLAY_BATCH:
            return
        last = batch[-1]


def deliveries_replay(*, deliveries: QuerySet[WebhookDelivery] | Iterable[WebhookDelivery], actor_label: str,
                      dry_run: bool = False, limit: int | None = None) -> ReplayCounts:
    """Replays each delivery (delivery_replay), oldest first, at most `limit`; every one ends in exactly one of
    triggered, still_unmappable and skipped."""
    counts = ReplayCounts()
    for pk in _ids_in_batches(deliveries, limit):
        counts.add(_replay(pk, actor_label, dry_run))
    return counts


PAUSE_ENDED = "Flowgate (the org's pause ended)"
RESUME_LOCK = "flowgate:deliveries-resume"


def deliveries_resume_paused(*, limit: int = 1000) -> int:
    """Replays deliveries held for an org's pause once that org is no longer paused (the sweep calls it); how many
    were replayed. Those held for an inactive flow or org wait for a person: someone deactivated it on purpose."""
    # Row locks already keep two sweeps from firing a delivery twice; this keeps an overlapping sweep from walking
    # the same list again only to skip it.
    if not cache.add(RESUME_LOCK, 1, timeout=300):
        return 0
    try:
        now = timezone.now()
        unpaused = ShopifyTopic.objects.filter(webhook=OuterRef("webhook"), topic=OuterRef("topic")).filter(
            Q(flow__org__paused_until__isnull=True) | Q(flow__org__paused_until__lte=now))
        due = WebhookDelivery.objects.filter(outcome=Outcome.HELD, held_for=HeldFor.PAUSED).filter(Exists(unpaused))
        return deliveries_replay(deliveries=due, actor_label=PAUSE_ENDED, limit=limit).replayed
    finally:
        cache.delete(RESUME_LOCK)


def shopify_webhook_save(*, slug: str, name: str, secret: str, shop_domains: list[str],
                         topics: Mapping[str, tuple[Flow, dict[str, str]]]) -> ShopifyWebhook:
    """Creates or updates a webhook with its topics (seed_demo). A changed secret replaces the old one outright."""
    webhook = ShopifyWebhook.objects.filter(slug=slug).first() or ShopifyWebhook(slug=slug)
    webhook.name = name
    webhook.shop_domains = "\n".join(shop_domains)
    webhook.is_active = True
    if webhook.pk is None or webhook.secret.reveal() != secret:
        webhook.secret = secret
        webhook.rotation_secret = None
        webhook.secret_rotated_at = timezone.now() if webhook.pk else None
    webhook.full_clean(exclude=["secret", "rotation_secret"])
    webhook.save()
    for topic, (flow, mapping) in topics.items():
        ShopifyTopic.objects.update_or_create(webhook=webhook, topic=topic, defaults={"flow": flow, "mapping": mapping})
    return webhook


def shopify_webhook_set_secret(*, webhook: ShopifyWebhook, secret: str, keep_previous: bool = True) -> None:
    """A new signing secret (unsaved). With keep_previous, the old one becomes the rotation secret, accepted
    until removed: Shopify can take up to an hour to sign with the new one."""
    if webhook.pk is not None and keep_previous and webhook.secret is not None:
        webhook.rotation_secret = webhook.secret
        webhook.secret_rotated_at = timezone.now()
    webhook.secret = secret
