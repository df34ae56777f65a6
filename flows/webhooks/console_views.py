"""Console pages for webhook deliveries: browse and search, with unmappable and rejected ones in plain sight."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from .models import ShopifyWebhook, WebhookDelivery
from .selectors import delivery_page, delivery_search

VIEW_PERMISSION = "flows.view_webhookdelivery"


def _render(request: HttpRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    return render(request, template, {**admin.site.each_context(request), **context})


@staff_member_required
@permission_required(VIEW_PERMISSION, raise_exception=True)
def delivery_list(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "")[:255]
    outcome = request.GET.get("outcome", "")
    outcome = outcome if outcome in WebhookDelivery.Outcome.values else ""
    webhook = request.GET.get("webhook", "")
    webhook_id = int(webhook) if webhook.isascii() and webhook.isdigit() and len(webhook) < 19 else None
    before = request.GET.get("before", "")
    rows, next_before = delivery_page(
        delivery_search(q=q, outcome=outcome, webhook_id=webhook_id),
        before=int(before) if before.isascii() and before.isdigit() and len(before) < 19 else None,
    )
    params = {name: value for name, value in (("q", q), ("outcome", outcome), ("webhook", webhook_id or ""))
              if value}
    return _render(request, "console/deliveries.html", {
        "title": "Webhook deliveries", "rows": rows, "next_before": next_before, "first_page": bool(before),
        "query": urlencode(params), "q": q, "outcome": outcome, "webhook_id": webhook_id,
        "outcomes": WebhookDelivery.Outcome.choices,
        "webhooks": ShopifyWebhook.objects.order_by("name").values_list("pk", "name"),
    })


@staff_member_required
@permission_required(VIEW_PERMISSION, raise_exception=True)
def delivery_detail(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(WebhookDelivery.objects.select_related("webhook", "trigger__flow__org"), pk=pk)
    return _render(request, "console/deliveries_detail.html", {
        "title": f"Webhook delivery {delivery.pk}", "delivery": delivery, "body": _readable(delivery.body),
    })


def _readable(body: str) -> str:
    """Indented when it is JSON (Shopify sends it compact), else as received."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        return body
