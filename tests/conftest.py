"""Shared fixtures. Personas: alice the admin, bob from support."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

from flows.models import ExternalClientApp, Flow, FlowInput, Org

MY_DOMAIN = "https://acme.my.salesforce.com"
CONSUMER_KEY = "3MVG9-test-consumer-key-0123456789"
CONSUMER_SECRET = "test-consumer-secret-ABCDEF0123456789"


@pytest.fixture(autouse=True)
def _clear_cache():
    """Tokens live in the shared cache (Redis): no test sees another's."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_superuser("alice", "alice@example.com", "alice-password-1")


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", "bob@example.com", "bob-password-1", is_staff=True)


def make_org(*, slug: str = "acme", url: str = MY_DOMAIN, key: str = CONSUMER_KEY,
             secret: str = CONSUMER_SECRET) -> Org:
    org = Org.objects.create(name=slug.title(), slug=slug, my_domain_url=url, api_version="v65.0")
    ExternalClientApp.objects.create(org=org, name="Flowgate", consumer_key=key, consumer_secret=secret)
    return org


def make_flow(org: Org, api_name: str = "On_Demand_Flow") -> Flow:
    flow = Flow.objects.create(org=org, api_name=api_name, label=api_name.replace("_", " "))
    for order, (name, required) in enumerate([("EmailAddress", False), ("IndividualId", True),
                                              ("TelephoneNumber", False)]):
        FlowInput.objects.create(flow=flow, name=name, required=required, order=order)
    return flow


@pytest.fixture
def org(db) -> Org:
    return make_org()


@pytest.fixture
def flow(org) -> Flow:
    return make_flow(org)
