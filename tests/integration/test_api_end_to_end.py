"""The API and the Shopify webhook end to end: HTTP in, a real worker over Redis, the emulator, the result read
back through the API."""

from __future__ import annotations

import pytest

from flows.api.services import api_key_create
from flows.models import Trigger
from flows.webhooks.models import ShopifyTopic, ShopifyWebhook, WebhookDelivery
from tests.conftest import wait_final
from tests.webhooks.conftest import DEMO_MAPPING, fixture_body, fixture_payload, shopify_headers

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_an_api_call_fires_the_flow_and_reads_back_succeeded(client, worker, emulator, emu_flow):
    _, raw_key = api_key_create(name="ERP sync", flows=[emu_flow])
    bearer = {"Authorization": f"Bearer {raw_key}"}

    response = client.post("/api/v1/flows/emu/On_Demand_Flow/triggers", content_type="application/json",
                           data={"inputs": {"IndividualId": "003API", "EmailAddress": "ada@example.com"}},
                           headers={**bearer, "Idempotency-Key": "order-1"})

    assert response.status_code == 202
    trigger = wait_final(Trigger.objects.get(pk=response.json()["id"]))
    assert (trigger.status, trigger.source, trigger.actor_label) == ("succeeded", "api", "ERP sync")
    body = client.get(response.json()["url"], headers=bearer).json()
    assert (body["status"], body["attempts"], body["error"]) == ("succeeded", 1, None)
    assert body["outputs"]["Flow__InterviewStatus"] == "Finished"
    assert body["finished_at"] is not None
    again = client.post("/api/v1/flows/emu/On_Demand_Flow/triggers", content_type="application/json",
                        data={"inputs": {"IndividualId": "003API", "EmailAddress": "ada@example.com"}},
                        headers={**bearer, "Idempotency-Key": "order-1"})
    assert (again.status_code, again.json()["status"]) == (200, "succeeded")
    assert emulator.emulator.snapshot()["by_individual"] == {"003API": 1}  # sent once


def test_a_shopify_order_fires_the_flow(client, worker, emulator, emu_flow):
    webhook = ShopifyWebhook.objects.create(name="Acme store", slug="acme", shop_domains="jsmith.myshopify.com",
                                            secret="test-client-secret")
    ShopifyTopic.objects.create(webhook=webhook, topic="orders/create", flow=emu_flow, mapping=DEMO_MAPPING)
    body = fixture_body()

    response = client.post("/hooks/shopify/acme", data=body, content_type="application/json",
                           headers=shopify_headers(body))

    assert response.status_code == 200
    assert response.json()["outcome"] == "triggered"
    trigger = wait_final(WebhookDelivery.objects.get().trigger)
    assert (trigger.status, trigger.source, trigger.actor_label) == ("succeeded", "webhook", "Acme store")
    customer_id = str(fixture_payload()["customer"]["id"])
    assert emulator.emulator.snapshot()["by_individual"] == {customer_id: 1}
    invoke = trigger.exchanges.get(kind="invoke")
    assert '"EmailAddress": "jon@example.com"' in invoke.request_body
    assert '"TelephoneNumber": "555-555-SHIP"' in invoke.request_body
