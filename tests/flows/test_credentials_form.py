"""The External Client App's write-only credentials in the admin, as alice the admin meets them (issue 12):
a failed *Add org* keeps the consumer key she typed and says plainly that the secret must be typed again; the
stored key and secret are told apart by a fingerprint (the key's last 4 characters, the secret's length, when they
were set), never shown. Bob from Support sees none of it."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from flows.crypto import Secret
from flows.models import ExternalClientApp, Org
from tests.conftest import CONSUMER_KEY, CONSUMER_SECRET, make_org, support_user
from tests.console.conftest import logged_in

NEW_KEY = "3MVG9-globex-consumer-key-9876543210"
NEW_SECRET = "globex-consumer-secret-ZYXWVU9876543210"
RETYPE_NEW = "For safety the secret is not shown again: type it again."
RETYPE_CHANGE = ("For safety the secret you typed is not shown again: type it again, or leave it empty to keep the "
                 "stored one.")
ADD_ORG = reverse("admin:flows_org_add")


@pytest.fixture
def as_alice(alice):
    return logged_in(alice)


@pytest.fixture
def app(org) -> ExternalClientApp:
    return org.client_apps.get()


def widget(html: str, name: str) -> str:
    """The <input> tag of one field."""
    match = re.search(rf'<input\b[^>]*\bname="{name}"[^>]*>', html)
    assert match, f"no field {name}"
    return match.group(0)


def org_form(**changes) -> dict:
    """Alice's Add org form with its External Client App inline, as the browser posts it."""
    return {
        "name": "Globex", "slug": "globex", "my_domain_url": "https://globex.my.salesforce.com",
        "api_version": "v65.0", "max_concurrent_calls": "10", "is_active": "on",
        "client_apps-TOTAL_FORMS": "1", "client_apps-INITIAL_FORMS": "0", "client_apps-MIN_NUM_FORMS": "0",
        "client_apps-MAX_NUM_FORMS": "1000", "client_apps-0-name": "Flowgate", "client_apps-0-is_active": "on",
        "client_apps-0-new_consumer_key": NEW_KEY, "client_apps-0-new_consumer_secret": NEW_SECRET, **changes,
    }


# --- 1. a failed Add org keeps the key, and says the secret must be typed again ---------------------


def test_a_failed_add_org_keeps_the_typed_key_and_asks_for_the_secret_again(as_alice):
    response = as_alice.post(ADD_ORG, org_form(my_domain_url="https://login.salesforce.com"))

    assert response.status_code == 200  # the org's own field is wrong: nothing saved
    assert not Org.objects.filter(slug="globex").exists()
    html = response.content.decode()
    assert f'value="{NEW_KEY}"' in widget(html, "client_apps-0-new_consumer_key")  # kept, as typed
    secret = widget(html, "client_apps-0-new_consumer_secret")
    assert "value=" not in secret and NEW_SECRET not in html  # never sent back
    assert 'aria-describedby="id_client_apps-0-new_consumer_secret_retype"' in secret
    note = re.search(r'<p class="help retype-note" id="id_client_apps-0-new_consumer_secret_retype"[^>]*>([^<]*)</p>',
                     html)
    assert note and note.group(1) == RETYPE_NEW


def test_typing_the_secret_again_adds_the_org(as_alice):
    as_alice.post(ADD_ORG, org_form(my_domain_url="https://login.salesforce.com"))

    response = as_alice.post(ADD_ORG, org_form())

    assert response.status_code == 302, response.content.decode()[:2000]
    app = ExternalClientApp.objects.get(org__slug="globex")
    assert (app.consumer_key.reveal(), app.consumer_secret.reveal()) == (NEW_KEY, NEW_SECRET)


def test_no_note_when_no_secret_was_typed(as_alice):
    response = as_alice.post(ADD_ORG, org_form(**{"client_apps-0-new_consumer_secret": ""}))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Required for a new External Client App." in html  # the empty secret is the error itself
    assert "retype-note" not in html
    assert f'value="{NEW_KEY}"' in widget(html, "client_apps-0-new_consumer_key")


def test_the_empty_add_org_page_renders_no_key_and_no_note(as_alice):
    """An unbound form has nothing typed: no value, and no note (the key's value would come from a GET query)."""
    html = as_alice.get(ADD_ORG, {"new_consumer_key": NEW_KEY, "client_apps-0-new_consumer_key": NEW_KEY}
                        ).content.decode()

    assert "value=" not in widget(html, "client_apps-0-new_consumer_key")
    assert NEW_KEY not in html and "retype-note" not in html


def test_a_failed_change_keeps_the_new_key_and_never_renders_the_stored_one(as_alice, app):
    """On the app's own page: another active app for the org is an error; the key just typed stays in its box,
    the stored one never appears, and the secret's note says an empty box keeps the stored secret."""
    other = make_org(slug="other").client_apps.get()
    url = reverse("admin:flows_externalclientapp_change", args=[app.pk])

    response = as_alice.post(url, {"org": other.org_id, "name": "Moved", "is_active": "on",
                                   "new_consumer_key": NEW_KEY, "new_consumer_secret": NEW_SECRET})

    html = response.content.decode()
    assert response.status_code == 200
    assert f'value="{NEW_KEY}"' in widget(html, "new_consumer_key")
    assert RETYPE_CHANGE in html
    for literal in (NEW_SECRET, CONSUMER_KEY, CONSUMER_SECRET):
        assert literal not in html
    app.refresh_from_db()
    assert (app.consumer_key.reveal(), app.consumer_secret.reveal()) == (CONSUMER_KEY, CONSUMER_SECRET)


# --- 2. a fingerprint of what is stored, never the values ---------------------------------------------


def expected_fingerprint(app: ExternalClientApp, key: str = CONSUMER_KEY, secret: str = CONSUMER_SECRET) -> str:
    when = (f"last changed {timezone.localtime(app.rotated_at):%Y-%m-%d %H:%M %Z}" if app.rotated_at else
            f"set {timezone.localtime(app.created_at):%Y-%m-%d %H:%M %Z}")
    return f"key …{key[-4:]} · secret {len(secret)} characters · {when}"


@pytest.mark.parametrize("page", ["app", "app list", "org"])
def test_the_fingerprint_tells_which_credentials_are_stored(as_alice, app, page):
    url = {"app": reverse("admin:flows_externalclientapp_change", args=[app.pk]),
           "app list": reverse("admin:flows_externalclientapp_changelist"),
           "org": reverse("admin:flows_org_change", args=[app.org_id])}[page]

    html = as_alice.get(url).content.decode()

    fingerprint = expected_fingerprint(app)
    assert fingerprint == f"key …6789 · secret 37 characters · set {app.created_at:%Y-%m-%d %H:%M} UTC"
    assert fingerprint in html
    for literal in (CONSUMER_KEY, CONSUMER_SECRET, app.consumer_key.ciphertext, app.consumer_secret.ciphertext):
        assert literal not in html


def test_a_new_secret_changes_the_fingerprint_and_says_when(as_alice, app):
    url = reverse("admin:flows_externalclientapp_change", args=[app.pk])
    before = as_alice.get(url).content.decode()

    as_alice.post(url, {"org": app.org_id, "name": app.name, "is_active": "on", "new_consumer_key": "",
                        "new_consumer_secret": NEW_SECRET})

    app.refresh_from_db()
    after = as_alice.get(url).content.decode()
    assert app.rotated_at is not None
    assert expected_fingerprint(app, secret=NEW_SECRET) in after  # same key, a longer secret, the change's time
    assert "secret 37 characters" in before and "secret 39 characters" in after and "key …6789" in after
    assert NEW_SECRET not in after


def test_a_short_key_shows_none_of_its_characters(as_alice, db):
    app = make_org(slug="short", key="abc123", secret="s").client_apps.get()

    html = as_alice.get(reverse("admin:flows_externalclientapp_change", args=[app.pk])).content.decode()

    assert "key of 6 characters · secret 1 character · set " in html
    assert "…c123" not in html


def test_credentials_no_key_decrypts_say_so(as_alice, app, settings):
    ExternalClientApp.objects.filter(pk=app.pk).update(consumer_secret=Secret("gAAAAA-not-readable"))

    html = as_alice.get(reverse("admin:flows_externalclientapp_change", args=[app.pk])).content.decode()

    assert "Stored, but no key in FLOWGATE_ENCRYPTION_KEYS decrypts them" in html


def test_support_never_sees_the_fingerprint(app):
    bob = logged_in(support_user())

    org_page = bob.get(reverse("admin:flows_org_change", args=[app.org_id]))

    assert org_page.status_code == 200
    html = org_page.content.decode()
    assert "key …" not in html and "characters · set" not in html
    assert bob.get(reverse("admin:flows_externalclientapp_changelist")).status_code == 403
