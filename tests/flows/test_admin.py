"""The admin as alice (superuser) and bob (support staff without permissions) use it."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.db import connection
from django.urls import reverse

from flows.models import Exchange, ExternalClientApp, Org, Trigger
from flows.salesforce.recording import record_exchange
from tests.conftest import CONSUMER_KEY, CONSUMER_SECRET

NEW_KEY = "3MVG9-globex-consumer-key-9876543210"
NEW_SECRET = "globex-consumer-secret-ZYXWVU9876543210"


@pytest.fixture
def as_alice(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def app(org) -> ExternalClientApp:
    return org.client_apps.get()


def change_url(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def app_form(app: ExternalClientApp, **changes) -> dict:
    return {"org": app.org_id, "name": app.name, "is_active": "on", "new_consumer_key": "",
            "new_consumer_secret": "", **changes}


def test_alice_adds_a_client_app_with_encrypted_credentials(as_alice, db):
    globex = Org.objects.create(name="Globex", slug="globex", my_domain_url="https://globex.my.salesforce.com")

    response = as_alice.post(reverse("admin:flows_externalclientapp_add"), {
        "org": globex.pk, "name": "Flowgate", "is_active": "on",
        "new_consumer_key": NEW_KEY, "new_consumer_secret": NEW_SECRET})

    assert response.status_code == 302, response.content.decode()[:2000]
    app = ExternalClientApp.objects.get(org=globex)
    assert (app.consumer_key.reveal(), app.consumer_secret.reveal()) == (NEW_KEY, NEW_SECRET)
    assert app.rotated_at is None
    with connection.cursor() as cursor:
        cursor.execute("SELECT consumer_key || consumer_secret FROM flows_externalclientapp WHERE id = %s", [app.pk])
        stored = cursor.fetchone()[0]
    assert NEW_KEY not in stored and NEW_SECRET not in stored


def test_a_new_client_app_needs_both_credentials(as_alice, db):
    globex = Org.objects.create(name="Globex", slug="globex", my_domain_url="https://globex.my.salesforce.com")

    response = as_alice.post(reverse("admin:flows_externalclientapp_add"), {
        "org": globex.pk, "name": "Flowgate", "is_active": "on", "new_consumer_key": NEW_KEY})

    assert response.status_code == 200
    assert "Required for a new External Client App." in response.content.decode()
    assert NEW_KEY not in response.content.decode()  # not even the value just typed is rendered back
    assert not ExternalClientApp.objects.filter(org=globex).exists()


def test_a_second_active_app_for_an_org_is_a_form_error(as_alice, app):
    response = as_alice.post(reverse("admin:flows_externalclientapp_add"), {
        "org": app.org_id, "name": "Second", "is_active": "on",
        "new_consumer_key": NEW_KEY, "new_consumer_secret": NEW_SECRET})

    assert response.status_code == 200
    assert ExternalClientApp.objects.filter(org=app.org).count() == 1


def test_the_app_page_shows_that_credentials_are_set_never_their_values(as_alice, app):
    response = as_alice.get(change_url(app))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Consumer key and secret set" in html
    assert 'name="new_consumer_secret"' in html
    for literal in (CONSUMER_KEY, CONSUMER_SECRET, app.consumer_secret.ciphertext):
        assert literal not in html


def test_the_org_page_inline_never_shows_the_credentials(as_alice, app):
    response = as_alice.get(change_url(app.org))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="client_apps-0-new_consumer_secret"' in html  # the inline is there
    assert CONSUMER_KEY not in html and CONSUMER_SECRET not in html


def test_saving_with_empty_credential_fields_keeps_them(as_alice, app):
    response = as_alice.post(change_url(app), app_form(app, name="Renamed"))

    assert response.status_code == 302
    app.refresh_from_db()
    assert app.name == "Renamed"
    assert (app.consumer_key.reveal(), app.consumer_secret.reveal()) == (CONSUMER_KEY, CONSUMER_SECRET)
    assert app.rotated_at is None


def test_saving_a_new_secret_rotates_it(as_alice, app):
    response = as_alice.post(change_url(app), app_form(app, new_consumer_secret=NEW_SECRET))

    assert response.status_code == 302
    app.refresh_from_db()
    assert (app.consumer_key.reveal(), app.consumer_secret.reveal()) == (CONSUMER_KEY, NEW_SECRET)
    assert app.rotated_at is not None


def test_a_new_secret_through_the_org_inline_rotates_it(as_alice, app):
    org = app.org
    response = as_alice.post(change_url(org), {
        "name": org.name, "slug": org.slug, "my_domain_url": org.my_domain_url, "api_version": org.api_version,
        "max_concurrent_calls": org.max_concurrent_calls,
        "is_active": "on", "client_apps-TOTAL_FORMS": "1", "client_apps-INITIAL_FORMS": "1",
        "client_apps-MIN_NUM_FORMS": "0", "client_apps-MAX_NUM_FORMS": "1000",
        "client_apps-0-id": app.pk, "client_apps-0-org": org.pk, "client_apps-0-name": app.name,
        "client_apps-0-is_active": "on", "client_apps-0-new_consumer_key": "",
        "client_apps-0-new_consumer_secret": NEW_SECRET})

    assert response.status_code == 302, response.content.decode()[:2000]
    app.refresh_from_db()
    assert (app.consumer_key.reveal(), app.consumer_secret.reveal()) == (CONSUMER_KEY, NEW_SECRET)
    assert app.rotated_at is not None


@pytest.fixture
def trigger(flow) -> Trigger:
    return Trigger.objects.create(flow=flow, inputs={"IndividualId": "003Ho00002AlRM8IAN"},
                                  source=Trigger.Source.API, actor_label="tests", status=Trigger.Status.FAILED,
                                  error_code="UNKNOWN_EXCEPTION")


@pytest.fixture
def exchange(trigger) -> Exchange:
    return record_exchange(org=trigger.flow.org, trigger=trigger, kind=Exchange.Kind.INVOKE, method="POST",
                           url="https://acme.my.salesforce.com/services/data/v65.0/actions/custom/flow/On_Demand_Flow",
                           request_headers={"Authorization": "Bearer 00Dsecret-token-value"}, request_body="{}",
                           response_status=400, response_body="[]")


@pytest.mark.parametrize("model", [Trigger, Exchange])
def test_triggers_and_exchanges_are_read_only(as_alice, trigger, exchange, model):
    obj = trigger if model is Trigger else exchange
    name = model._meta.model_name

    assert as_alice.get(reverse(f"admin:flows_{name}_changelist")).status_code == 200
    page = as_alice.get(change_url(obj))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert as_alice.get(reverse(f"admin:flows_{name}_add")).status_code == 403
    assert as_alice.post(change_url(obj), {}).status_code == 403
    assert as_alice.get(reverse(f"admin:flows_{name}_delete", args=[obj.pk])).status_code == 403
    assert model.objects.filter(pk=obj.pk).exists()


def test_the_exchange_page_shows_the_redacted_authorization(as_alice, exchange):
    html = as_alice.get(change_url(exchange)).content.decode()

    assert "00Dsecret-token-value" not in html
    assert "[REDACTED]" in html


def test_every_registered_changelist_loads(as_alice, trigger, exchange):
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        response = as_alice.get(url)
        assert response.status_code == 200, url


def test_bob_without_permissions_cannot_see_client_apps(client, bob, app):
    client.force_login(bob)

    assert client.get(reverse("admin:flows_externalclientapp_changelist")).status_code == 403
    assert client.get(change_url(app)).status_code == 403
