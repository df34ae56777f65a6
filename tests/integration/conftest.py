"""Integration: real PostgreSQL, a real Redis broker, a real Celery worker and the emulator over loopback."""

from __future__ import annotations

import time

import pytest
from celery.contrib.testing.worker import start_worker

from flows.models import Flow, Org, Trigger
from portal.celery import app as celery_app
from sfemu import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET, serve_in_thread
from tests.conftest import make_flow, make_org


@pytest.fixture(scope="session")
def emulator_server():
    with serve_in_thread() as running:
        yield running


@pytest.fixture
def emulator(emulator_server):
    emulator_server.emulator.reset()
    return emulator_server


@pytest.fixture(scope="module")
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
