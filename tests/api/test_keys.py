"""API keys: created by the command and the admin, shown once, stored hashed, scoped, revocable."""

from __future__ import annotations

import hashlib
from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import connection

from flows.api.models import ApiKey
from flows.api.services import api_key_authenticate, api_key_create
from flows.roles import SUPPORT
from flows.webhooks.models import ShopifyWebhook

from .conftest import TRIGGERS, VALID_INPUTS, Api

pytestmark = pytest.mark.django_db


def create_api_key(*args: str) -> list[str]:
    out = StringIO()
    call_command("create_api_key", *args, stdout=out)
    return out.getvalue().splitlines()


def stored_row(api_key: ApiKey) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name || prefix || key_hash FROM flows_apikey WHERE id = %s", [api_key.pk])
        return cursor.fetchone()[0]


def test_create_api_key_prints_the_key_last_and_stores_only_its_hash(client, flow, other_flow):
    lines = create_api_key("--name", "ERP sync", "--flow", "acme/On_Demand_Flow")

    raw = lines[-1]
    api_key = ApiKey.objects.get()
    assert raw.startswith(api_key.prefix + "_") and len(raw) == len(api_key.prefix) + 1 + 43
    assert api_key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in stored_row(api_key)
    assert (api_key.name, api_key.all_flows, list(api_key.flows.all())) == ("ERP sync", False, [flow])
    assert Api(client, raw).post(TRIGGERS, {"inputs": VALID_INPUTS}).status_code == 202
    assert Api(client, raw).post("/api/v1/flows/acme/Other_Flow/triggers",
                                 {"inputs": VALID_INPUTS}).status_code == 404


def test_create_api_key_without_flows_scopes_all_flows(client, flow, other_flow):
    raw = create_api_key("--name", "Everything")[-1]

    assert ApiKey.objects.get().all_flows
    assert Api(client, raw).post("/api/v1/flows/acme/Other_Flow/triggers",
                                 {"inputs": VALID_INPUTS}).status_code == 202


def test_create_api_key_refuses_an_unknown_flow_or_a_taken_name(flow):
    with pytest.raises(CommandError, match="No flow 'acme/Nope'"):
        create_api_key("--name", "X", "--flow", "acme/Nope")
    create_api_key("--name", "X")
    with pytest.raises(CommandError, match="An active API key is already named 'X'."):
        create_api_key("--name", "X")
    assert ApiKey.objects.count() == 1


def test_keys_are_matched_by_prefix_and_hash(flow):
    api_key, raw = api_key_create(name="A", flows=[flow])
    _, other_raw = api_key_create(name="B", flows=[flow])

    assert api_key_authenticate(raw_key=raw) == api_key
    assert api_key_authenticate(raw_key=raw[:12] + other_raw[12:]) is None  # right prefix, wrong secret
    assert api_key_authenticate(raw_key="fg_zz") is None


# --- the admin ---------------------------------------------------------------------------------------------


def test_alice_creates_a_key_in_the_admin_and_sees_it_once(client, alice, flow):
    client.force_login(alice)

    response = client.post("/admin/flows/apikey/add/", {"name": "Shop sync", "flows": [flow.pk]})

    api_key = ApiKey.objects.get()
    html = response.content.decode()
    raw = html.split('readonly value="')[1].split('"')[0]
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert "cannot show it again" in html
    assert hashlib.sha256(raw.encode()).hexdigest() == api_key.key_hash
    assert (api_key.created_by, api_key.all_flows, list(api_key.flows.all())) == (alice, False, [flow])
    change = client.get(f"/admin/flows/apikey/{api_key.pk}/change/").content.decode()
    assert raw not in change and api_key.key_hash not in change
    assert api_key.prefix in change
    listing = client.get("/admin/flows/apikey/").content.decode()
    assert raw not in listing and api_key.key_hash not in listing


def test_a_key_needs_flows_or_all_flows(client, alice, flow):
    client.force_login(alice)

    response = client.post("/admin/flows/apikey/add/", {"name": "Nothing"})

    assert response.status_code == 200
    assert "Choose the flows this key may use, or tick" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_alice_revokes_a_key_and_its_requests_get_401(client, alice, flow):
    api_key, raw = api_key_create(name="Old", flows=[flow])
    client.force_login(alice)

    client.post("/admin/flows/apikey/", {"action": "revoke", "_selected_action": [api_key.pk]})

    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert Api(client, raw).post(TRIGGERS, {"inputs": VALID_INPUTS}).status_code == 401
    # a revoked key frees its name for the replacement
    assert api_key_create(name="Old", flows=[flow])[0].pk != api_key.pk


def test_support_never_sees_credentials(client, bob, flow):
    bob.groups.add(Group.objects.get(name=SUPPORT))
    api_key, _ = api_key_create(name="K", flows=[flow])
    webhook = ShopifyWebhook.objects.create(name="S", slug="s", shop_domains="*", secret="x")
    client.force_login(bob)

    for url in ("/admin/flows/apikey/", f"/admin/flows/apikey/{api_key.pk}/change/", "/admin/flows/apikey/add/",
                "/admin/flows/shopifywebhook/", f"/admin/flows/shopifywebhook/{webhook.pk}/change/"):
        assert client.get(url).status_code == 403, url
    assert client.get("/admin/flows/webhookdelivery/").status_code == 200
