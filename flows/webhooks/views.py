"""Incoming webhooks: thin views over webhook_delivery_receive."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from ..api.http import HttpError, json_view, read_body
from .selectors import shopify_webhook_for_slug
from .services import webhook_delivery_receive


@json_view("POST")
def shopify(request: HttpRequest, slug: str) -> JsonResponse:
    """csrf_exempt (json_view): Shopify proves itself with the HMAC signature, checked by the service."""
    webhook = shopify_webhook_for_slug(slug=slug)
    if webhook is None:
        raise HttpError(404, f"No active Shopify webhook {slug[:60]!r}.")
    receipt = webhook_delivery_receive(webhook=webhook, headers=request.headers, body=read_body(request))
    return JsonResponse(receipt.body, status=receipt.status)
