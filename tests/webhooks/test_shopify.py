"""POST /hooks/shopify/{slug} with Shopify's real sample orders/create payload."""

from __future__ import annotations

import json
import time
from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from flows.models import Flow, Trigger
from flows.webhooks.models import ShopifyWebhook, WebhookDelivery
from flows.webhooks import services
from flows.webhooks.services import shopify_webhook_set_secret

from .conftest import SECRET, URL, fixture_body, fixture_payload, shopify_headers, sign

pytestmark = pytest.mark.django_db


def test_the_fixture_is_signed_as_the_shopify_notes_say():
    assert sign(fixture_body(), "test-client-secret") == "vcc3Hq80cIL2UWAVNXW45YkFqqbVAcQ9/WliIrnRdTI="


def test_an_order_fires_the_flow_and_is_recorded(deliver, flow, django_capture_on_commit_callbacks):
    with mock.patch("flows.services._enqueue") as enqueue, django_capture_on_commit_callbacks(execute=True):
        response = deliver()

    trigger = Trigger.objects.get()
    delivery = WebhookDelivery.objects.get()
    assert response.status_code == 200
    assert response.json() == {"delivery": delivery.pk, "outcome": "triggered", "trigger": trigger.pk}
    assert (trigger.flow, trigger.source, trigger.actor_label) == (flow, "webhook", "Acme store")
    assert trigger.inputs == {"EmailAddress": "jon@example.com",
                              "IndividualId": str(fixture_payload()["customer"]["id"]),
                              "TelephoneNumber": "555-555-SHIP"}
    assert trigger.idempotency_key == ("shopify:jsmith.myshopify.com:orders/create:"
                                       "event-b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
    enqueue.assert_called_once_with(trigger.pk)
    assert delivery.trigger == trigger
    assert (delivery.outcome, delivery.reason, delivery.signed_with) == ("triggered", "", "current")
    assert (delivery.topic, delivery.shop_domain, delivery.shopify_webhook_id, delivery.event_id,
            delivery.api_version) == ("orders/create", "jsmith.myshopify.com", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
                                      "event-b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "2026-04")
    assert (delivery.order_number, delivery.order_name, delivery.email) == ("1234", "#9999", "jon@example.com")
    assert delivery.body == fixture_body().decode()
    assert delivery.body_bytes == len(fixture_body())
    assert delivery.headers["X-Shopify-Hmac-Sha256"] == "[REDACTED]"
    assert delivery.headers["X-Shopify-Topic"] == "orders/create"
    assert sign(fixture_body()) not in json.dumps(delivery.headers)


def test_a_delivery_is_answered_within_a_second(deliver):
    started = time.monotonic()
    response = deliver()
    assert response.status_code == 200
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("signature", [None, "", "not base64 at all", sign(b"another body"),
                                       sign(fixture_body(), "another-secret"), "vcc3Hq80cIL2UWAVNXW45Yké"])
def test_a_missing_or_wrong_signature_is_401_and_nothing_is_stored(deliver, signature):
    headers = shopify_headers(fixture_body())
    if signature is None:
        del headers["X-Shopify-Hmac-Sha256"]
    else:
        headers["X-Shopify-Hmac-Sha256"] = signature

    response = deliver(headers=headers)

    assert response.status_code == 401
    assert response.json() == {"error": "The X-Shopify-Hmac-Sha256 signature is missing or does not match."}
    assert not WebhookDelivery.objects.exists()
    assert not Trigger.objects.exists()


def test_the_signature_is_compared_in_constant_time(deliver, monkeypatch):
    """Kills the mutation `expected == given`: a valid signature is accepted only through hmac.compare_digest."""
    real = services.hmac.compare_digest
    compared = []

    def recording(expected, given):
        compared.append((expected, given))
        return real(expected, given)

    monkeypatch.setattr(services.hmac, "compare_digest", recording)
    assert deliver().status_code == 200
    assert compared == [(sign(fixture_body()).encode(), sign(fixture_body()).encode())]

    monkeypatch.setattr(services.hmac, "compare_digest", lambda expected, given: False)
    assert deliver(webhook_id="w-2").status_code == 401  # the same valid signature, refused by compare_digest


def test_the_signature_is_over_the_raw_bytes(deliver):
    reserialised = json.dumps(fixture_payload()).encode()  # same JSON, other bytes

    response = deliver(headers=shopify_headers(fixture_body()), body=reserialised)

    assert response.status_code == 401


def test_during_a_rotation_the_previous_secret_is_accepted_too(deliver, shopify_webhook):
    shopify_webhook_set_secret(webhook=shopify_webhook, secret="the-new-secret")
    shopify_webhook.save()

    old = deliver(secret=SECRET, webhook_id="w-old")
    new = deliver(secret="the-new-secret", webhook_id="w-new")
    other = deliver(secret="neither", webhook_id="w-other")

    assert (old.status_code, new.status_code, other.status_code) == (200, 200, 401)
    assert dict(WebhookDelivery.objects.values_list("shopify_webhook_id", "signed_with")) == {
        "w-old": "rotation", "w-new": "current"}


def test_a_duplicate_is_200_and_creates_nothing(deliver):
    first = deliver()

    with CaptureQueriesContext(connection) as queries:
        again = deliver()

    assert not [q for q in queries.captured_queries if q["sql"].startswith("INSERT")]  # not even attempted
    delivery = WebhookDelivery.objects.get()
    assert again.status_code == 200
    assert again.json() == {"delivery": delivery.pk, "outcome": "duplicate", "trigger": first.json()["trigger"]}
    assert Trigger.objects.count() == 1
    assert delivery.duplicates == 1
    assert delivery.last_duplicate_at is not None


def test_a_duplicate_arriving_at_the_same_moment_is_caught_by_the_constraint(deliver):
    """Two identical deliveries in flight: both see no earlier one; the second insert hits the unique constraint,
    its trigger is rolled back with it, and it is answered as the duplicate it is."""
    first = deliver()
    real_earlier = services._earlier
    calls = []

    def racing(*args):
        calls.append(args)
        return None if len(calls) == 1 else real_earlier(*args)

    with mock.patch("flows.webhooks.services._earlier", side_effect=racing):
        again = deliver()

    assert again.status_code == 200
    assert again.json() == {"delivery": first.json()["delivery"], "outcome": "duplicate",
                            "trigger": first.json()["trigger"]}
    assert len(calls) == 2
    assert Trigger.objects.count() == 1
    assert WebhookDelivery.objects.get().duplicates == 1


def test_the_same_event_through_another_delivery_fires_once(deliver):
    first = deliver(webhook_id="w-1", **{"X-Shopify-Event-Id": "event-42"})

    second = deliver(webhook_id="w-2", **{"X-Shopify-Event-Id": "event-42"})

    assert second.status_code == 200
    assert second.json()["outcome"] == "replayed"
    assert second.json()["trigger"] == first.json()["trigger"]
    assert Trigger.objects.count() == 1
    replayed = WebhookDelivery.objects.get(shopify_webhook_id="w-2")
    assert replayed.reason == (f"Event event-42 already fired trigger {first.json()['trigger']} (another delivery "
                               f"of the same event); nothing was sent again.")


def test_an_unknown_topic_is_recorded_as_ignored_and_answered_200(deliver):
    response = deliver(topic="orders/paid")

    delivery = WebhookDelivery.objects.get()
    assert response.status_code == 200
    assert response.json() == {"delivery": delivery.pk, "outcome": "ignored", "trigger": None}
    assert delivery.reason == ("No flow is mapped to the topic 'orders/paid': map it in the webhook's settings, or "
                               "remove the subscription in Shopify.")
    assert not Trigger.objects.exists()


def test_a_payload_without_contact_data_is_recorded_as_unmappable_and_answered_200(deliver):
    payload = fixture_payload()
    for key in ("email", "contact_email", "phone", "customer", "billing_address", "shipping_address"):
        payload.pop(key)
    body = json.dumps(payload).encode()

    response = deliver(body)

    delivery = WebhookDelivery.objects.get()
    assert response.status_code == 200
    assert response.json() == {"delivery": delivery.pk, "outcome": "unmappable", "trigger": None}
    assert delivery.reason == "IndividualId: Required, but the payload has no value at customer.id."
    assert (delivery.order_number, delivery.email) == ("1234", "")
    assert not Trigger.objects.exists()


@pytest.mark.parametrize("customer", [None, {}, {"id": None, "email": None}, "withheld", [1, 2]])
def test_odd_customers_never_cause_a_500(deliver, customer):
    payload = {**fixture_payload(), "customer": customer, "email": None, "contact_email": None}

    response = deliver(json.dumps(payload).encode())

    assert response.status_code == 200
    assert response.json()["outcome"] == "unmappable"


def test_a_value_that_does_not_fit_the_input_is_unmappable(deliver):
    payload = {**fixture_payload(), "customer": {"id": {"nested": 1}}}

    response = deliver(json.dumps(payload).encode())

    assert response.json()["outcome"] == "unmappable"
    assert WebhookDelivery.objects.get().reason == "IndividualId: Found an object, which does not fit a text input."


def test_an_inactive_flow_is_held_not_unmappable(deliver, flow):
    Flow.objects.filter(pk=flow.pk).update(is_active=False)

    response = deliver()

    assert response.json()["outcome"] == "held"  # test_replay.py covers held deliveries
    assert not Trigger.objects.exists()


@pytest.mark.parametrize("body, reason", [
    (b"not json", "The body is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
    (b"[1, 2]", "The body is not a JSON object."),
    (b"\xff\xfe{}", "The body is not valid UTF-8 (at byte 0)."),
])
def test_a_signed_body_that_is_not_a_json_object_is_unmappable(deliver, body, reason):
    response = deliver(body)

    assert response.status_code == 200
    delivery = WebhookDelivery.objects.get()
    assert (delivery.outcome, delivery.reason) == ("unmappable", reason)


def test_a_shop_not_allowed_is_403_and_recorded_as_rejected(deliver):
    response = deliver(shop="evil.myshopify.com")

    delivery = WebhookDelivery.objects.get()
    assert response.status_code == 403
    assert response.json() == {"error": "This shop may not deliver to this webhook.", "delivery": delivery.pk}
    assert (delivery.outcome, delivery.shop_domain) == ("rejected", "evil.myshopify.com")
    assert delivery.reason == "The shop evil.myshopify.com is not among this webhook's allowed shop domains."
    assert not Trigger.objects.exists()


def test_once_the_shop_is_allowed_shopifys_retry_goes_through(deliver, shopify_webhook):
    assert deliver(shop="second.myshopify.com").status_code == 403
    shopify_webhook.shop_domains += "\nSecond.myshopify.com"
    shopify_webhook.save()

    retry = deliver(shop="second.myshopify.com")

    assert retry.status_code == 200
    assert retry.json()["outcome"] == "triggered"
    assert sorted(WebhookDelivery.objects.values_list("outcome", flat=True)) == ["rejected", "triggered"]


def test_a_star_allows_any_shop(deliver, shopify_webhook):
    shopify_webhook.shop_domains = "*"
    shopify_webhook.save()

    assert deliver(shop="anyone.myshopify.com").status_code == 200


@pytest.mark.parametrize("missing", ["X-Shopify-Topic", "X-Shopify-Webhook-Id"])
def test_a_signed_delivery_without_topic_or_webhook_id_is_400_and_not_stored(deliver, missing):
    headers = shopify_headers(fixture_body())
    del headers[missing]

    response = deliver(headers=headers)

    assert response.status_code == 400
    assert response.json() == {"error": f"Missing header: {missing}."}
    assert not WebhookDelivery.objects.exists()


def test_an_unknown_or_inactive_webhook_is_404(deliver, shopify_webhook):
    assert deliver(url="/hooks/shopify/nope").status_code == 404
    ShopifyWebhook.objects.filter(pk=shopify_webhook.pk).update(is_active=False)
    response = deliver()
    assert response.status_code == 404
    assert response.json() == {"error": "No active Shopify webhook 'acme-store'."}
    assert not WebhookDelivery.objects.exists()


def test_a_body_over_256_kib_is_413_and_nothing_is_stored(deliver):
    body = b'{"note": "' + b"x" * (256 * 1024) + b'"}'

    response = deliver(body)

    assert response.status_code == 413
    assert not WebhookDelivery.objects.exists()


def test_a_long_body_is_kept_cut_with_a_marker(deliver, settings):
    settings.FLOWGATE_DELIVERY_BODY_LIMIT = 100

    deliver()

    delivery = WebhookDelivery.objects.get()
    cut = len(fixture_body().decode()) - 100
    assert delivery.body == fixture_body().decode()[:100] + f"\n…[cut: {cut} more characters]"
    assert delivery.trigger is not None  # the whole body was mapped


def test_a_secret_that_cannot_be_decrypted_is_503_so_shopify_retries(deliver, shopify_webhook, caplog):
    with connection.cursor() as cursor:  # as if the key it was encrypted with had been removed
        cursor.execute("UPDATE flows_shopifywebhook SET secret = 'gAAAAAbogus' WHERE id = %s", [shopify_webhook.pk])

    response = deliver()

    assert response.status_code == 503
    assert response.json() == {"error": "This webhook's signing secret cannot be read; an admin must fix it."}
    assert "acme-store: its signing secret cannot be decrypted" in caplog.text
    assert not WebhookDelivery.objects.exists()


def test_get_is_405(client, shopify_webhook):
    response = client.get(URL)

    assert response.status_code == 405
    assert not WebhookDelivery.objects.exists()


def test_seed_demo_creates_the_demo_webhook_that_fires_the_demo_flow(client, db):
    call_command("seed_demo", salesforce_url="https://demo.my.salesforce.com", shopify_secret="s3cret",
                 stdout=StringIO())
    call_command("seed_demo", salesforce_url="https://demo.my.salesforce.com", shopify_secret="s3cret",
                 stdout=StringIO())  # idempotent

    webhook = ShopifyWebhook.objects.get()
    topic = webhook.topics.get()
    assert (webhook.slug, webhook.secret.reveal(), webhook.rotation_secret) == ("demo", "s3cret", None)
    assert (topic.topic, str(topic.flow)) == ("orders/create", "demo/On_Demand_Flow")
    assert topic.mapping == {
        "EmailAddress": "email | contact_email | customer.email",
        "IndividualId": "customer.id",
        "TelephoneNumber": "phone | customer.phone",  # the E.164 ones: the demo's TelephoneNumber takes no other
    }
    body = fixture_body()
    response = client.post("/hooks/shopify/demo", data=body, content_type="application/json",
                           headers=shopify_headers(body, secret="s3cret"))
    assert response.status_code == 200
    assert Trigger.objects.get().inputs["EmailAddress"] == "jon@example.com"


def test_seed_demo_can_restrict_the_demo_shop(db):
    call_command("seed_demo", salesforce_url="https://demo.my.salesforce.com", shopify_secret="s3cret",
                 shopify_shop=["acme.myshopify.com"], stdout=StringIO())

    assert ShopifyWebhook.objects.get().allowed_shop_domains == ["acme.myshopify.com"]


def test_seed_demo_without_a_shopify_secret_creates_no_webhook(db):
    call_command("seed_demo", salesforce_url="https://demo.my.salesforce.com", stdout=StringIO())

    assert not ShopifyWebhook.objects.exists()
