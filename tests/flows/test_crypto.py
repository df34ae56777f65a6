"""Encryption at rest of the External Client App's consumer key and secret."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.core import serializers
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from flows import crypto
from flows.crypto import DecryptionError, Secret, decrypt, encrypt, validate_keys
from flows.models import ExternalClientApp
from tests.conftest import CONSUMER_KEY, CONSUMER_SECRET

FIRST_KEY, SECOND_KEY = django_settings.FLOWGATE_ENCRYPTION_KEYS[:2]


def test_round_trip():
    ciphertext = encrypt("s3cret value ✓")

    assert ciphertext != "s3cret value ✓"
    assert decrypt(ciphertext) == "s3cret value ✓"
    assert encrypt("same") != encrypt("same")  # a fresh IV every time


def test_the_database_holds_only_ciphertext(org):
    app = org.client_apps.get()
    with connection.cursor() as cursor:
        cursor.execute("SELECT consumer_key, consumer_secret FROM flows_externalclientapp WHERE id = %s", [app.pk])
        raw_key, raw_secret = cursor.fetchone()

    for raw, plaintext in ((raw_key, CONSUMER_KEY), (raw_secret, CONSUMER_SECRET)):
        assert plaintext not in raw
        assert Fernet(FIRST_KEY).decrypt(raw.encode()).decode() == plaintext  # the newest key encrypts
    assert app.consumer_key.reveal() == CONSUMER_KEY
    assert app.consumer_secret.reveal() == CONSUMER_SECRET


def test_a_plaintext_assigned_to_the_field_is_sealed_at_once(org):
    app = org.client_apps.get()

    app.consumer_secret = "brand-new-secret-value"

    assert isinstance(app.consumer_secret, Secret)
    assert "brand-new-secret-value" not in repr(vars(app))
    assert app.consumer_secret.reveal() == "brand-new-secret-value"


def test_serialising_an_app_never_shows_plaintext(org):
    dumped = serializers.serialize("json", ExternalClientApp.objects.all())

    assert CONSUMER_KEY not in dumped and CONSUMER_SECRET not in dumped
    assert org.client_apps.get().consumer_key.ciphertext in dumped


def test_a_secret_is_masked_in_str_and_repr(org):
    secret = org.client_apps.get().consumer_secret

    for shown in (str(secret), repr(secret), f"{secret}", f"{secret!r}", str([secret]), str({"s": secret})):
        assert CONSUMER_SECRET not in shown
        assert secret.ciphertext not in shown
        assert "********" in shown


def test_a_wrong_key_gives_a_clear_error_never_the_ciphertext(org, settings):
    secret = org.client_apps.get().consumer_secret
    settings.FLOWGATE_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(DecryptionError) as caught:
        secret.reveal()

    message = str(caught.value)
    assert "FLOWGATE_ENCRYPTION_KEYS" in message and "cannot be decrypted" in message
    assert secret.ciphertext not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_garbage_ciphertext_is_a_decryption_error():
    with pytest.raises(DecryptionError):
        decrypt("not a fernet token")


def test_data_under_the_second_key_still_decrypts_while_it_is_listed(settings):
    old = Fernet(SECOND_KEY).encrypt(b"encrypted before rotation").decode()

    assert decrypt(old) == "encrypted before rotation"
    rotated = crypto.rotate(old)
    assert Fernet(FIRST_KEY).decrypt(rotated.encode()) == b"encrypted before rotation"

    settings.FLOWGATE_ENCRYPTION_KEYS = [FIRST_KEY]  # the old key retired: rotated data still reads, old data not
    assert decrypt(rotated) == "encrypted before rotation"
    with pytest.raises(DecryptionError):
        decrypt(old)


def test_rotate_of_unreadable_data_explains_itself(settings):
    old = Fernet(SECOND_KEY).encrypt(b"x").decode()
    settings.FLOWGATE_ENCRYPTION_KEYS = [FIRST_KEY]

    with pytest.raises(DecryptionError, match="FLOWGATE_ENCRYPTION_KEYS"):
        crypto.rotate(old)


def test_validate_keys_accepts_the_configured_keys():
    validate_keys([FIRST_KEY, SECOND_KEY])


@pytest.mark.parametrize("keys", [[], ["not-a-fernet-key"], [FIRST_KEY, "c2hvcnQ="]], ids=["none", "malformed",
                                                                                         "second-malformed"])
def test_validate_keys_explains_how_to_make_a_key(keys):
    with pytest.raises(ImproperlyConfigured) as caught:
        validate_keys(keys)

    message = str(caught.value)
    assert "Fernet.generate_key" in message
    for key in keys:
        assert key not in message  # key material never lands in an error or a log
