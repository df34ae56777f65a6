"""Security tests: fast password hashing (many logins), and the Salesforce side mocked unless a test uses the
emulator."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.webhooks.conftest import shopify_webhook  # noqa: F401  (a fixture the fuzz tests use)


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def logged_in(user, **options) -> Client:
    client = Client(**options)
    client.force_login(user)
    return client
