"""`manage.py rotate_encryption_key`: every secret re-encrypted under the newest key, so the old one can go; a
secret no key can read is named and left alone (exit 1); a concurrent edit is never overwritten; and a rotation
in the middle of real traffic (worker + emulator) loses no trigger."""

from __future__ import annotations

import threading
import time
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection

from flows import key_rotation, services
from flows.crypto import Secret
from flows.key_rotation import encrypted_fields, rotate_encryption_key
from flows.models import ExternalClientApp, Trigger
from flows.salesforce import tokens
from flows.webhooks.models import ShopifyTopic, ShopifyWebhook
from tests.conftest import CONSUMER_KEY, CONSUMER_SECRET, MY_DOMAIN, make_org, wait_final
from tests.webhooks.conftest import DEMO_MAPPING, SHOP, fixture_body, shopify_headers

OLD, NEW, LOST = (Fernet.generate_key().decode() for _ in range(3))
WEBHOOK_SECRET, PREVIOUS_WEBHOOK_SECRET = "shpss_current-webhook-secret", "shpss_previous-webhook-secret"
COLUMNS = {ExternalClientApp: ("consumer_key", "consumer_secret"), ShopifyWebhook: ("secret", "rotation_secret")}


def raw(model, pk, column: str) -> str | None:
    """The ciphertext as stored, read past the ORM."""
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT "{column}" FROM "{model._meta.db_table}" WHERE id = %s', [pk])
        return cursor.fetchone()[0]


def under(key: str, ciphertext: str) -> str:
    return Fernet(key).decrypt(ciphertext.encode()).decode()


def rotate(**options) -> str:
    out = StringIO()
    call_command("rotate_encryption_key", stdout=out, stderr=out, **options)
    return out.getvalue()


def make_webhook(slug: str = "acme-store", rotation: str | None = PREVIOUS_WEBHOOK_SECRET) -> ShopifyWebhook:
    return ShopifyWebhook.objects.create(name=slug, slug=slug, shop_domains=SHOP, secret=WEBHOOK_SECRET,
                                         rotation_secret=rotation)


@pytest.fixture
def old_data(db, settings):
    """An org's credentials and two webhooks (one without a rotation secret), all saved under OLD."""
    settings.FLOWGATE_ENCRYPTION_KEYS = [OLD]
    org = make_org()
    return {"app": org.client_apps.get(), "webhook": make_webhook(), "plain": make_webhook("plain", rotation=None)}


# --- the rotation -----------------------------------------------------------------------------------------


def test_every_secret_moves_to_the_new_key_and_the_old_key_can_then_go(old_data, settings):
    settings.FLOWGATE_ENCRYPTION_KEYS = [NEW, OLD]

    output = rotate()

    assert "flows.ExternalClientApp.consumer_key: 1 re-encrypted, 0 already under the newest key, 0 empty" in output
    assert "flows.ShopifyWebhook.secret: 2 re-encrypted" in output
    assert "flows.ShopifyWebhook.rotation_secret: 1 re-encrypted, 0 already under the newest key, 1 empty" in output
    assert "older keys may now be removed" in output
    app, webhook = old_data["app"], old_data["webhook"]
    assert under(NEW, raw(ExternalClientApp, app.pk, "consumer_key")) == CONSUMER_KEY
    assert under(NEW, raw(ExternalClientApp, app.pk, "consumer_secret")) == CONSUMER_SECRET
    assert under(NEW, raw(ShopifyWebhook, webhook.pk, "secret")) == WEBHOOK_SECRET
    assert under(NEW, raw(ShopifyWebhook, webhook.pk, "rotation_secret")) == PREVIOUS_WEBHOOK_SECRET
    assert raw(ShopifyWebhook, old_data["plain"].pk, "rotation_secret") is None  # empty stays empty

    settings.FLOWGATE_ENCRYPTION_KEYS = [NEW]  # the old key removed
    app = ExternalClientApp.objects.get(pk=app.pk)
    webhook = ShopifyWebhook.objects.get(pk=webhook.pk)
    assert (app.consumer_key.reveal(), app.consumer_secret.reveal()) == (CONSUMER_KEY, CONSUMER_SECRET)
    assert (webhook.secret.reveal(), webhook.rotation_secret.reveal()) == (WEBHOOK_SECRET, PREVIOUS_WEBHOOK_SECRET)


def stored(rows: dict) -> dict[tuple, str | None]:
    """Every stored ciphertext of these rows."""
    return {(type(row).__name__, row.pk, column): raw(type(row), row.pk, column)
            for row in rows.values() for column in COLUMNS[type(row)]}


def test_a_second_run_rewrites_nothing(old_data, settings):
    settings.FLOWGATE_ENCRYPTION_KEYS = [NEW, OLD]
    rotate()
    before = stored(old_data)

    output = rotate()

    assert "flows.ExternalClientApp.consumer_secret: 0 re-encrypted, 1 already under the newest key" in output
    assert stored(old_data) == before


def test_every_encrypted_field_of_every_model_is_found():
    found = {(model._meta.label, f.name) for model, fields in encrypted_fields().items() for f in fields}

    assert {("flows.ExternalClientApp", "consumer_key"), ("flows.ExternalClientApp", "consumer_secret"),
            ("flows.ShopifyWebhook", "secret"), ("flows.ShopifyWebhook", "rotation_secret")} <= found


def test_rows_are_rotated_across_batches(db, settings):
    settings.FLOWGATE_ENCRYPTION_KEYS = [OLD]
    apps = [make_org(slug=f"org{n}", key=f"key-{n}", secret=f"secret-{n}").client_apps.get() for n in range(7)]
    settings.FLOWGATE_ENCRYPTION_KEYS = [NEW, OLD]

    report = rotate_encryption_key(batch_size=3)

    assert report.counts["flows.ExternalClientApp.consumer_secret"]["rotated"] == 7
    settings.FLOWGATE_ENCRYPTION_KEYS = [NEW]
    assert [ExternalClientApp.objects.get(pk=a.pk).consumer_secret.reveal() for a in apps] == [
        f"secret-{n}" for n in range(7)]


def test_cached_tokens_are_dropped_and_fetched_again(old_data, settings):
    app = old_data["app"]
    fetched = []

    def fetch() -> tokens.Token:
        fetched.append(1)
        return tokens.Token(f"00D!token-{len(fetched)}", MY_DOMAIN)

    assert tokens.get_token(app, fetch).access_token == "00D!token-1"  # cached, encrypted under OLD
    assert tokens.get_token(app, fetch).access_token == "00D!token-1"
    settings.FLOWGATE_ENCRYPTION_KEYS = [NEW, OLD]

    assert "Cached tokens dropped for 1 External Client App(s)" in rotate()

    assert tokens.get_token(app, fetch).access_token == "00D!token-2"
    assert len(fetched) == 2


# --- what cannot be read ----------------------------------------------------------------------------------


def test_a_secret_no_key_can_read_is_named_and_its_row_left_alone(old_data, settings):
    app, webhook = old_data["app"], old_data["webhook"]
    # The consumer secret was saved under a key that has since been lost; the consumer key is readable.
    lost = Fernet(LOST).encrypt(b"unrecoverable").decode()
    ExternalClientApp.objects.filter(pk=app.pk).update(consumer_secret=Secret(lost))
    key_before = raw(ExternalClientApp, app.pk, "consumer_key")
    settings.FLOWGATE_ENCRYPTION_KEYS = [NEW, OLD]
    err = StringIO()

    with pytest.raises(CommandError) as failure:
        call_command("rotate_encryption_key", stdout=StringIO(), stderr=err)

    assert failure.value.returncode == 1
    assert "1 secret(s) were not re-encrypted" in str(failure.value)
    assert f"flows.ExternalClientApp.consumer_secret pk={app.pk}: cannot be decrypted" in err.getvalue()
    # Nothing of that row was written, not even its readable field; the other rows were rotated.
    assert raw(ExternalClientApp, app.pk, "consumer_secret") == lost
    assert raw(ExternalClientApp, app.pk, "consumer_key") == key_before
    assert under(NEW, raw(ShopifyWebhook, webhook.pk, "secret")) == WEBHOOK_SECRET


def test_rotating_after_the_old_key_was_dropped_says_which_rows_are_lost(old_data, settings):
    settings.FLOWGATE_ENCRYPTION_KEYS = [NEW]  # the old key removed before rotating: a mistake
    err = StringIO()

    with pytest.raises(CommandError) as failure:
        call_command("rotate_encryption_key", stdout=StringIO(), stderr=err)

    assert failure.value.returncode == 1
    lines = err.getvalue().splitlines()
    assert f"flows.ExternalClientApp.consumer_key pk={old_data['app'].pk}: cannot be decrypted with any key in " \
           f"FLOWGATE_ENCRYPTION_KEYS (was the key it was saved with removed?); this row was left unchanged" in lines
    assert sum("cannot be decrypted" in line for line in lines) == 5  # 2 + 2 + 1 (one rotation secret is empty)
    assert under(OLD, raw(ExternalClientApp, old_data["app"].pk, "consumer_secret")) == CONSUMER_SECRET


def test_without_any_key_the_command_explains_how_to_make_one(db, settings):
    settings.FLOWGATE_ENCRYPTION_KEYS = []

    with pytest.raises(CommandError) as failure:
        rotate()

    assert failure.value.returncode == 1
    assert "FLOWGATE_ENCRYPTION_KEYS is not set" in str(failure.value)
    assert "Fernet.generate_key" in str(failure.value)


# --- concurrency ------------------------------------------------------------------------------------------


def test_a_secret_saved_during_the_rotation_is_not_overwritten(old_data, settings, monkeypatch):
    app = old_data["app"]
    settings.FLOWGATE_ENCRYPTION_KEYS = [NEW, OLD]
    real_rotate = key_rotation.crypto.rotate
    edits = []

    def rotate_while_alice_saves(ciphertext: str) -> str:
        if not edits:  # after the row was read, before it is written: alice saves a new secret
            edits.append(1)
            app.consumer_secret = "typed-by-alice"
            app.save()
        return real_rotate(ciphertext)

    monkeypatch.setattr(key_rotation.crypto, "rotate", rotate_while_alice_saves)

    report = rotate_encryption_key()

    assert report.retried_rows == 1 and report.problems == []
    settings.FLOWGATE_ENCRYPTION_KEYS = [NEW]
    app = ExternalClientApp.objects.get(pk=app.pk)
    assert app.consumer_secret.reveal() == "typed-by-alice"  # her edit, not the stale rotated value
    assert app.consumer_key.reveal() == CONSUMER_KEY


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_rotation_in_the_middle_of_traffic_loses_no_trigger(worker, emulator, emu_flow, settings, client):
    """Real worker, real broker, the emulator: triggers fire from another thread while the key rotates; then
    the old keys go (every process sees the new list: the worker runs in this process) and more fire."""
    old_keys = list(settings.FLOWGATE_ENCRYPTION_KEYS)  # emu_flow's credentials were saved under these
    webhook = make_webhook()
    ShopifyTopic.objects.create(webhook=webhook, topic="orders/create", flow=emu_flow, mapping=DEMO_MAPPING)
    warm = services.trigger_create(flow=emu_flow, inputs={"IndividualId": "003WARM"}, source=Trigger.Source.API)
    assert wait_final(warm).status == Trigger.Status.SUCCEEDED  # a token is cached, under the old key

    settings.FLOWGATE_ENCRYPTION_KEYS = [NEW, *old_keys]  # step 1: the new key first, everywhere
    fired: list[int] = []
    rotated = threading.Event()

    def traffic() -> None:
        try:
            while not rotated.is_set() or len(fired) < 10:
                trigger = services.trigger_create(flow=emu_flow, inputs={"IndividualId": f"003T{len(fired)}"},
                                                  source=Trigger.Source.API)
                fired.append(trigger.pk)
                time.sleep(0.01)
        finally:
            connection.close()

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        time.sleep(0.1)
        output = rotate()  # step 2
    finally:
        rotated.set()
        thread.join(timeout=30)
    assert "older keys may now be removed" in output

    settings.FLOWGATE_ENCRYPTION_KEYS = [NEW]  # step 3: the old keys removed
    after = [services.trigger_create(flow=emu_flow, inputs={"IndividualId": f"003A{n}"},
                                     source=Trigger.Source.API).pk for n in range(5)]
    body = fixture_body()
    delivery = client.post("/hooks/shopify/acme-store", data=body, content_type="application/json",
                           headers=shopify_headers(body, secret=WEBHOOK_SECRET))

    assert delivery.status_code == 200 and delivery.json()["outcome"] == "triggered"
    triggers = [wait_final(Trigger.objects.get(pk=pk)) for pk in [*fired, *after, delivery.json()["trigger"]]]
    assert len(triggers) >= 16
    assert {(t.status, t.error_code) for t in triggers} == {(Trigger.Status.SUCCEEDED, "")}
    assert ShopifyWebhook.objects.get(pk=webhook.pk).rotation_secret.reveal() == PREVIOUS_WEBHOOK_SECRET
