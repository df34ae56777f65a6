"""Shared fixtures. Personas: alice the admin, bob from support."""

from __future__ import annotations

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.management import call_command

from flows.models import ExternalClientApp, Flow, FlowInput, Org, Trigger
from flows.roles import ADMINS, SUPPORT
from flows.salesforce import tokens
from portal.celery import app as celery_app
from sfemu import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET, serve_in_thread

MY_DOMAIN = "https://acme.my.salesforce.com"
CONSUMER_KEY = "3MVG9-test-consumer-key-0123456789"
CONSUMER_SECRET = "test-consumer-secret-ABCDEF0123456789"


@pytest.fixture(scope="session", autouse=True)
def _static_files_collected():
    """DEBUG is off in tests, so pages link static files by their hashed names from collectstatic's manifest,
    exactly as in production (WhiteNoise): collected once per run, into the test run's own STATIC_ROOT."""
    call_command("collectstatic", interactive=False, verbosity=0)


@pytest.fixture(autouse=True)
def _clear_cache():
    """Tokens live in the shared cache (Redis) and, for a few seconds, in the process: no test sees another's."""
    cache.clear()
    tokens.forget_local()
    yield
    cache.clear()
    tokens.forget_local()


@pytest.fixture
def enqueued(monkeypatch) -> list[tuple]:
    """Every dispatch_trigger.apply_async call, recorded instead of reaching a broker."""
    from flows import tasks

    calls: list[tuple] = []
    monkeypatch.setattr(tasks.dispatch_trigger, "apply_async",
                        lambda args=None, kwargs=None, **options: calls.append((args, kwargs, options)))
    return calls


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


def support_user(username: str = "bob", password: str = "bob-password-1"):
    user = get_user_model().objects.create_user(username, f"{username}@example.com", password, is_staff=True)
    user.groups.add(Group.objects.get(name=SUPPORT))
    return user


def admin_user(username: str = "alice", password: str = "alice-password-1"):
    user = get_user_model().objects.create_user(username, f"{username}@example.com", password, is_staff=True)
    user.groups.add(Group.objects.get(name=ADMINS))
    return user


# --- real services: the emulator and a Celery worker over the Redis broker ---------------------------


@pytest.fixture(scope="session")
def emulator_server():
    with serve_in_thread() as running:
        yield running


@pytest.fixture
def emulator(emulator_server):
    emulator_server.emulator.reset()
    return emulator_server


@pytest.fixture(scope="session")
def worker():
    with celery_app.connection_for_write() as connection:
        celery_app.amqp.queues["celery"].bind(connection.default_channel).purge()
    with start_worker(celery_app, pool="threads", concurrency=4, perform_ping_check=False,
                      loglevel="WARNING", shutdown_timeout=30) as running:
        yield running


@pytest.fixture
def emu_org(transactional_db, emulator) -> Org:
    return make_org(slug="emu", url=emulator.url, key=DEFAULT_CONSUMER_KEY, secret=DEFAULT_CONSUMER_SECRET)


@pytest.fixture
def emu_flow(emu_org) -> Flow:
    return make_flow(emu_org)


def wait_final(trigger: Trigger, seconds: float = 20) -> Trigger:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        trigger.refresh_from_db()
        if trigger.is_final:
            return trigger
        time.sleep(0.05)
    raise AssertionError(f"trigger {trigger.pk} still {trigger.status} after {seconds} s")
