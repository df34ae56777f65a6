"""Shopify deliveries: verify, record, map, fire. One validation and a couple of inserts, the trigger enqueued
after commit: the answer never waits for Salesforce."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from ..api.http import InvalidJson, is_storable, parse_json, storable_text
from ..crypto import DecryptionError
from ..inputs import InputValidationError
from ..models import Flow, Trigger
from ..services import IdempotencyConflict, trigger_create
from .mapping import map_payload, parse_expression, resolve
from .models import ShopifyTopic, ShopifyWebhook, WebhookDelivery

logger = logging.getLogger(__name__)

Outcome = WebhookDelivery.Outcome
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
    inputs, problems = map_payload(route.mapping, flow.inputs.all(), payload)
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
        delivery.outcome = Outcome.TRIGGERED


def _payload(body: bytes) -> tuple[dict[str, Any] | None, str]:
    """The payload, or None and why not."""
    try:
        payload = parse_json(body)
    except InvalidJson as error:
        return None, str(error)
    return (payload, "") if isinstance(payload, dict) else (None, "The body is not a JSON object.")


def _process(delivery: WebhookDelivery, payload: dict[str, Any] | None, problem: str) -> None:
    route = (ShopifyTopic.objects.select_related("flow__org").prefetch_related("flow__inputs")
             .filter(webhook=delivery.webhook, topic=delivery.topic).first())
    if route is None:
        delivery.outcome = Outcome.IGNORED
        delivery.reason = (f"No flow is mapped to the topic {delivery.topic!r}: map it in the webhook's settings, "
                           f"or remove the subscription in Shopify.")
    elif payload is None:
        delivery.outcome, delivery.reason = Outcome.UNMAPPABLE, problem
    else:
        _fire(delivery, route, payload)


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
    with the reason), or a trigger queued.
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
        body=storable_text(body.decode("utf-8", "replace"),
                           int(getattr(settings, "FLOWGATE_DELIVERY_BODY_LIMIT", DEFAULT_BODY_LIMIT))),
        body_bytes=len(body),
    )
    payload, problem = _payload(body)
    _extract_for_search(delivery, payload)
    if not shop_allowed(webhook=webhook, shop_domain=delivery.shop_domain):
        delivery.outcome = Outcome.REJECTED
        delivery.reason = (f"The shop {delivery.shop_domain or '(no X-Shopify-Shop-Domain)'} is not among this "
                           f"webhook's allowed shop domains.")
        delivery.save()
        return Receipt(403, {"error": "This shop may not deliver to this webhook.", "delivery": delivery.pk})
    if earlier := _earlier(webhook, delivery.shopify_webhook_id):
        return _duplicate(earlier)
    try:
        with transaction.atomic():
            _process(delivery, payload, problem)
            delivery.save()
    except IntegrityError:  # the same delivery, at the same moment, got in first
        if earlier := _earlier(webhook, delivery.shopify_webhook_id):
            return _duplicate(earlier)
        raise
    return Receipt(200, {"delivery": delivery.pk, "outcome": delivery.outcome, "trigger": delivery.trigger_id})


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
