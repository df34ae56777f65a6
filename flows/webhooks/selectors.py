"""Reads for webhooks and their deliveries."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from ..api.selectors import NAME
from .models import ShopifyWebhook, WebhookDelivery

PAGE_SIZE = 50


def shopify_webhook_for_slug(*, slug: str) -> ShopifyWebhook | None:
    if not NAME.fullmatch(slug):
        return None
    return ShopifyWebhook.objects.filter(slug=slug, is_active=True).first()


def delivery_search(*, q: str = "", outcome: str = "", webhook_id: int | None = None) -> QuerySet[WebhookDelivery]:
    """Newest first. `q` matches a webhook id, an email, an order number (1234 or #1234) or an order name
    exactly, all served by indexes."""
    deliveries = WebhookDelivery.objects.select_related("webhook", "trigger")
    if outcome:
        deliveries = deliveries.filter(outcome=outcome)
    if webhook_id:
        deliveries = deliveries.filter(webhook_id=webhook_id)
    if q := q.strip():
        number = q.lstrip("#")
        deliveries = deliveries.filter(
            Q(shopify_webhook_id=q) | Q(email=q.lower()) | Q(order_number=number) | Q(order_name=q)
            | Q(order_name=f"#{number}")
        )
    return deliveries.order_by("-id")


def delivery_page(deliveries: QuerySet[WebhookDelivery], *, before: int | None
                  ) -> tuple[list[WebhookDelivery], int | None]:
    """One page by keyset (ids below `before`) and the next page's cursor: no COUNT(*) over every delivery."""
    if before:
        deliveries = deliveries.filter(pk__lt=before)
    rows = list(deliveries[: PAGE_SIZE + 1])
    return rows[:PAGE_SIZE], rows[PAGE_SIZE - 1].pk if len(rows) > PAGE_SIZE else None


def deliveries_replayable(*, webhook_id: int | None = None, outcomes: tuple[str, ...] = ()
                          ) -> QuerySet[WebhookDelivery]:
    """Held and unmappable deliveries (or only the outcomes given, among those two), of one webhook or all."""
    replayable = (WebhookDelivery.Outcome.HELD, WebhookDelivery.Outcome.UNMAPPABLE)
    deliveries = WebhookDelivery.objects.filter(outcome__in=[o for o in outcomes if o in replayable] or replayable)
    if webhook_id:
        deliveries = deliveries.filter(webhook_id=webhook_id)
    return deliveries


def shopify_webhook_slugs() -> list[str]:
    return list(ShopifyWebhook.objects.order_by("slug").values_list("slug", flat=True))
