"""Webhook fixtures: the real Shopify sample payload, a webhook mapping orders/create to the acme flow, and a
sender that signs bodies as Shopify does."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from flows.webhooks.models import ShopifyTopic, ShopifyWebhook

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "orders-create.json"  # a copy of shared/fixtures/shopify
SECRET = "test-client-secret"
SHOP = "jsmith.myshopify.com"
DEMO_MAPPING = {
    "EmailAddress": "email | contact_email | customer.email",
    "IndividualId": "customer.id",
    "TelephoneNumber": "phone | billing_address.phone | shipping_address.phone | customer.phone",
}
URL = "/hooks/shopify/acme-store"


def fixture_body() -> bytes:
    return FIXTURE.read_bytes()


def fixture_payload() -> dict[str, Any]:
    return json.loads(fixture_body())


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def shopify_headers(body: bytes, *, webhook_id: str = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
                    topic: str = "orders/create", shop: str = SHOP, secret: str = SECRET,
                    **extra: str) -> dict[str, str]:
    return {
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign(body, secret),
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-API-Version": "2026-04",
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Event-Id": f"event-{webhook_id}",
        "X-Shopify-Triggered-At": "2026-11-28T18:00:00.000000000Z",
        **extra,
    }


@pytest.fixture
def shopify_webhook(flow) -> ShopifyWebhook:
    webhook = ShopifyWebhook.objects.create(name="Acme store", slug="acme-store", shop_domains=SHOP, secret=SECRET)
    ShopifyTopic.objects.create(webhook=webhook, topic="orders/create", flow=flow, mapping=DEMO_MAPPING)
    return webhook


@pytest.fixture
def deliver(client, shopify_webhook):
    """Posts a body as Shopify does; keyword arguments go to shopify_headers (headers=None: none at all)."""

    def post(body: bytes | None = None, *, url: str = URL, headers: dict[str, str] | None = None, **options):
        body = fixture_body() if body is None else body
        headers = shopify_headers(body, **options) if headers is None else headers
        return client.post(url, data=body, content_type="application/json", headers=headers)

    return post
