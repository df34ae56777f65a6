"""The console's delivery pages: alice (admin) and bob (support) find deliveries; others may not."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from flows.roles import SUPPORT
from flows.webhooks.models import WebhookDelivery

from .conftest import fixture_body, fixture_payload, sign

LIST = "/console/deliveries/"


@pytest.fixture
def support_bob(bob):
    bob.groups.add(Group.objects.get(name=SUPPORT))
    return bob


@pytest.fixture
def deliveries(deliver) -> dict[str, WebhookDelivery]:
    """One of each kind: triggered, unmappable (no contact data), ignored (topic), rejected (shop)."""
    deliver(webhook_id="w-ok")
    bare = {k: v for k, v in fixture_payload().items() if k not in ("customer", "email", "contact_email")}
    bare.update(order_number=5678, name="#5678")
    deliver(json.dumps(bare).encode(), webhook_id="w-bare")
    deliver(webhook_id="w-paid", topic="orders/paid")
    deliver(webhook_id="w-evil", shop="evil.myshopify.com")
    return {d.shopify_webhook_id: d for d in WebhookDelivery.objects.all()}


def listed(response) -> list[str]:
    return [d.shopify_webhook_id for d in response.context["rows"]]


def test_alice_sees_every_delivery_newest_first_with_unmappable_and_rejected(client, alice, deliveries):
    client.force_login(alice)

    response = client.get(LIST)

    html = response.content.decode()
    assert response.status_code == 200
    assert listed(response) == ["w-evil", "w-paid", "w-bare", "w-ok"]
    for label in ("Triggered", "Unmappable", "Topic not mapped", "Rejected (shop not allowed)"):
        assert label in html
    trigger_id = deliveries["w-ok"].trigger_id
    assert f'href="/console/triggers/{trigger_id}/"' in html


@pytest.mark.parametrize("q, expected", [
    ("1234", ["w-evil", "w-paid", "w-ok"]),  # the sample's order number (the rejected one was recorded too)
    ("#9999", ["w-evil", "w-paid", "w-ok"]),  # its name
    ("5678", ["w-bare"]),
    ("#5678", ["w-bare"]),
    ("JON@example.com", ["w-evil", "w-paid", "w-ok"]),
    ("w-bare", ["w-bare"]),
    ("nobody@example.com", []),
])
def test_deliveries_are_found_by_order_number_email_or_webhook_id(client, alice, deliveries, q, expected):
    client.force_login(alice)

    assert listed(client.get(LIST, {"q": q})) == expected


def test_deliveries_filter_by_outcome(client, alice, deliveries):
    client.force_login(alice)

    assert listed(client.get(LIST, {"outcome": "unmappable"})) == ["w-bare"]
    assert listed(client.get(LIST, {"outcome": "rejected"})) == ["w-evil"]
    assert listed(client.get(LIST, {"outcome": "bogus"})) == ["w-evil", "w-paid", "w-bare", "w-ok"]


def test_pages_go_back_in_time(client, alice, deliveries, monkeypatch):
    monkeypatch.setattr("flows.webhooks.selectors.PAGE_SIZE", 3)
    client.force_login(alice)

    first = client.get(LIST)
    second = client.get(LIST, {"before": first.context["next_before"]})

    assert listed(first) == ["w-evil", "w-paid", "w-bare"]
    assert listed(second) == ["w-ok"]
    assert second.context["next_before"] is None


def test_the_detail_page_shows_the_delivery_without_the_signature(client, support_bob, deliveries):
    client.force_login(support_bob)
    delivery = deliveries["w-ok"]

    response = client.get(f"/console/deliveries/{delivery.pk}/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "X-Shopify-Hmac-Sha256: [REDACTED]" in html
    assert f'href="/console/triggers/{delivery.trigger_id}/"' in html
    assert "jon@example.com" in html
    assert sign(fixture_body()) not in html
    assert "&quot;order_number&quot;: 1234," in html  # the body, indented


def test_the_detail_page_explains_an_unmappable_delivery(client, alice, deliveries):
    client.force_login(alice)

    html = client.get(f"/console/deliveries/{deliveries['w-bare'].pk}/").content.decode()

    assert "IndividualId: Required, but the payload has no value at customer.id." in html


def test_support_bob_may_browse_deliveries(client, support_bob, deliveries):
    client.force_login(support_bob)

    assert client.get(LIST).status_code == 200


def test_staff_without_the_permission_get_403(client, bob, deliveries):
    client.force_login(bob)

    assert client.get(LIST).status_code == 403
    assert client.get(f"/console/deliveries/{deliveries['w-ok'].pk}/").status_code == 403


def test_anonymous_and_non_staff_users_are_sent_to_the_login(client, deliveries):
    assert client.get(LIST)["Location"].startswith("/admin/login/")
    carol = get_user_model().objects.create_user("carol", password="carol-password-1")
    carol.groups.add(Group.objects.get(name=SUPPORT))
    get_user_model().objects.filter(pk=carol.pk).update(is_staff=False)  # joining made her staff; turned off since
    client.force_login(carol)
    assert client.get(LIST).status_code == 302


def test_an_unknown_delivery_is_404(client, alice, db):
    client.force_login(alice)

    assert client.get("/console/deliveries/999999/").status_code == 404
