"""Shopify webhooks in the admin: write-only secrets, rotation, topic mappings checked against the flow."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from flows.webhooks.models import ShopifyWebhook, WebhookDelivery

from .conftest import DEMO_MAPPING, SECRET

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_alice(client, alice):
    client.force_login(alice)
    return client


def webhook_form(**changes) -> dict:
    return {
        "name": "Acme store", "slug": "acme-store", "shop_domains": "Acme.myshopify.com\n\n", "is_active": "on",
        "new_secret": "", "topics-TOTAL_FORMS": "0", "topics-INITIAL_FORMS": "0", **changes,
    }


def topic_form(flow, mapping: str, index: int = 0) -> dict:
    return {"topics-TOTAL_FORMS": str(index + 1), f"topics-{index}-topic": "orders/create",
            f"topics-{index}-flow": str(flow.pk), f"topics-{index}-mapping": mapping}


def test_alice_adds_a_webhook_with_an_encrypted_secret_and_a_mapping(as_alice, flow):
    response = as_alice.post("/admin/flows/shopifywebhook/add/", webhook_form(
        new_secret=SECRET, **topic_form(flow, json.dumps(DEMO_MAPPING))))

    assert response.status_code == 302, response.content.decode()[:3000]
    webhook = ShopifyWebhook.objects.get()
    assert (webhook.secret.reveal(), webhook.rotation_secret, webhook.allowed_shop_domains) == (
        SECRET, None, ["acme.myshopify.com"])
    assert webhook.topics.get().mapping == DEMO_MAPPING
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM flows_shopifywebhook WHERE id = %s", [webhook.pk])
        assert SECRET not in cursor.fetchone()[0]
    page = as_alice.get(f"/admin/flows/shopifywebhook/{webhook.pk}/change/").content.decode()
    assert SECRET not in page
    assert "https://HOST/hooks/shopify/acme-store" in page


def test_a_new_webhook_needs_a_secret_and_real_shop_domains(as_alice, flow):
    response = as_alice.post("/admin/flows/shopifywebhook/add/", webhook_form(shop_domains="not a domain"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Required for a new webhook." in html
    assert "Not a shop domain: not a domain." in html
    assert not ShopifyWebhook.objects.exists()


def test_a_mapping_that_does_not_fit_the_flow_is_a_form_error(as_alice, flow):
    response = as_alice.post("/admin/flows/shopifywebhook/add/", webhook_form(
        new_secret=SECRET, **topic_form(flow, '{"EmailAddress": "email |", "Colour": "x"}')))

    html = response.content.decode()
    assert response.status_code == 200
    assert "EmailAddress: The expression ends with |" in html
    assert "Colour: The flow has no such input." in html
    assert "IndividualId: A required input: map it." in html
    assert not ShopifyWebhook.objects.exists()


def test_a_new_secret_keeps_the_old_one_for_the_rotation_until_removed(as_alice, shopify_webhook):
    url = f"/admin/flows/shopifywebhook/{shopify_webhook.pk}/change/"
    topic = shopify_webhook.topics.get()
    inline = {"topics-TOTAL_FORMS": "1", "topics-INITIAL_FORMS": "1", "topics-0-id": str(topic.pk),
              "topics-0-webhook": str(shopify_webhook.pk), "topics-0-topic": topic.topic,
              "topics-0-flow": str(topic.flow_id), "topics-0-mapping": '{"IndividualId": "customer.id"}'}

    response = as_alice.post(url, {**webhook_form(new_secret="the-new-secret"), **inline})

    assert response.status_code == 302, response.content.decode()[:3000]
    shopify_webhook.refresh_from_db()
    assert (shopify_webhook.secret.reveal(), shopify_webhook.rotation_secret.reveal()) == ("the-new-secret", SECRET)
    assert shopify_webhook.secret_rotated_at is not None
    assert "the previous one still accepted since" in as_alice.get(url).content.decode()

    as_alice.post(url, {**webhook_form(forget_rotation_secret="on"), **inline})

    shopify_webhook.refresh_from_db()
    assert (shopify_webhook.secret.reveal(), shopify_webhook.rotation_secret) == ("the-new-secret", None)


def test_the_delivery_admin_is_read_only_and_redacted(as_alice, deliver):
    deliver()
    delivery = WebhookDelivery.objects.get()
    page = as_alice.get(f"/admin/flows/webhookdelivery/{delivery.pk}/change/").content.decode()

    assert "[REDACTED]" in page
    assert as_alice.get("/admin/flows/webhookdelivery/add/").status_code == 403
    assert as_alice.get("/admin/flows/webhookdelivery/?q=1234").status_code == 200
