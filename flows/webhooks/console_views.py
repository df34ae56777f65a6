"""Console pages for webhook deliveries: browse and search, with held, unmappable and rejected ones in plain
sight; replay held and unmappable ones (one, selected, or all held for a webhook)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_http_methods, require_POST

from .models import ShopifyWebhook, WebhookDelivery
from ..console.views import _back
from .selectors import deliveries_replayable, delivery_page, delivery_search
from .services import REPLAYABLE, ReplayCounts, deliveries_replay, delivery_replay

VIEW_PERMISSION = "flows.view_webhookdelivery"
REPLAY_PERMISSIONS = [VIEW_PERMISSION, "flows.replay_webhookdelivery"]
MAX_SELECTED = 200  # as the console's re-send of selected triggers
# Replayed within the request (no background job): held deliveries pile up only while a flow is off, and the
# command replays any number.
MAX_REPLAY_ALL = 1000
MAX_LINKS = 20


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
        "can_replay": request.user.has_perms(REPLAY_PERMISSIONS), "replayable": REPLAYABLE,
        "here": request.get_full_path(),
    })


@staff_member_required
@permission_required(VIEW_PERMISSION, raise_exception=True)
def delivery_detail(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(WebhookDelivery.objects.select_related("webhook", "trigger__flow__org"), pk=pk)
    return _render(request, "console/deliveries_detail.html", {
        "title": f"Webhook delivery {delivery.pk}", "delivery": delivery, "body": _readable(delivery.body),
        "can_replay": request.user.has_perms(REPLAY_PERMISSIONS) and delivery.outcome in REPLAYABLE,
    })


def _report(request: HttpRequest, counts: ReplayCounts) -> None:
    """The counts, links to the triggers created, and why the first few were skipped."""
    links = format_html_join(", ", '<a href="{}">#{}</a>',
                             ((reverse("console:trigger", args=[pk]), pk) for pk in counts.trigger_ids[:MAX_LINKS]))
    more = f" and {len(counts.trigger_ids) - MAX_LINKS} more" if len(counts.trigger_ids) > MAX_LINKS else ""
    summary = format_html(
        "Replayed {} deliver{}: {} triggered{}{}, {} still unmappable, {} skipped.",
        counts.replayed, "y" if counts.replayed == 1 else "ies", counts.triggered,
        format_html(" (trigger {})", links) if counts.trigger_ids else "", more,
        counts.still_unmappable, counts.skipped,
    )
    (messages.success if counts.triggered or not counts.replayed else messages.warning)(request, summary)
    for pk, reason in counts.skips[:10]:
        messages.warning(request, f"Delivery {pk} skipped: {reason}")


def _actor(request: HttpRequest) -> str:
    return request.user.get_username()


@require_POST
@staff_member_required
@permission_required(REPLAY_PERMISSIONS, raise_exception=True)
def delivery_replay_one(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(WebhookDelivery, pk=pk)
    result = delivery_replay(delivery=delivery, actor_label=_actor(request))
    counts = ReplayCounts()
    counts.add(result)
    _report(request, counts)
    if result.result == "still_unmappable":
        messages.warning(request, f"Delivery {pk} is still unmappable: {result.reason}")
    return redirect("console:delivery", pk=pk)


@require_POST
@staff_member_required
@permission_required(REPLAY_PERMISSIONS, raise_exception=True)
def deliveries_replay_selected(request: HttpRequest) -> HttpResponse:
    ids = [int(i) for i in request.POST.getlist("ids") if i.isascii() and i.isdigit() and len(i) < 19]
    back = _back(request, reverse("console:deliveries"))
    if not ids:
        messages.warning(request, "Select the deliveries to replay first.")
        return redirect(back)
    if len(ids) > MAX_SELECTED:
        messages.error(request, f"Select at most {MAX_SELECTED} deliveries at a time ({len(ids)} were selected), "
                                f"or replay them with python manage.py replay_deliveries.")
        return redirect(back)
    _report(request, deliveries_replay(deliveries=WebhookDelivery.objects.filter(pk__in=ids),
                                       actor_label=_actor(request)))
    return redirect(back)


@require_http_methods(["GET", "POST"])
@staff_member_required
@permission_required(REPLAY_PERMISSIONS, raise_exception=True)
def deliveries_replay_held(request: HttpRequest) -> HttpResponse:
    """GET: how many are held, and a confirmation form; POST: replays them, oldest first, up to MAX_REPLAY_ALL."""
    data = request.POST if request.method == "POST" else request.GET
    raw = data.get("webhook", "")
    webhook = (ShopifyWebhook.objects.filter(pk=int(raw)).first()
               if raw.isascii() and raw.isdigit() and len(raw) < 19 else None)
    if webhook is None:
        messages.error(request, "Choose a webhook in the filter first, then replay its held deliveries.")
        return redirect("console:deliveries")
    held = deliveries_replayable(webhook_id=webhook.pk, outcomes=(WebhookDelivery.Outcome.HELD,))
    listing = f"{reverse('console:deliveries')}?{urlencode({'outcome': 'held', 'webhook': webhook.pk})}"
    if request.method == "POST":
        _report(request, deliveries_replay(deliveries=held, actor_label=_actor(request), limit=MAX_REPLAY_ALL))
        return redirect(listing)
    return _render(request, "console/deliveries.html", {  # the list's template holds the confirmation too
        "title": "Replay held deliveries", "confirm_held": True, "webhook": webhook, "count": held.count(),
        "limit": MAX_REPLAY_ALL, "cancel": listing,
    })


def _readable(body: str) -> str:
    """Indented when it is JSON (Shopify sends it compact), else as received."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        return body
