"""Console fixtures. Here bob is a support user (the "Support" group), alice the superuser, dave staff without a
group. Users are made with a fast password hasher; task enqueues are recorded, never sent to a broker."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from flows import tasks
from flows.models import Flow, Trigger
from tests.conftest import support_user

INPUTS = {"IndividualId": "003Ho00002AlRM8IAN", "EmailAddress": "ada@example.com"}


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_broker(enqueued):
    """Task enqueues are recorded (tests/conftest.py's `enqueued`), never sent."""


@pytest.fixture(autouse=True)
def jobs_enqueued(monkeypatch) -> list[int]:
    """Every run_resend_job.delay call (the job ids), recorded instead of reaching a broker."""
    calls: list[int] = []
    monkeypatch.setattr(tasks.run_resend_job, "delay", lambda job_id: calls.append(job_id))
    return calls


@pytest.fixture
def bob(db):
    """Support staff (overrides the group-less bob of tests/conftest.py)."""
    return support_user()


@pytest.fixture
def dave(db):
    """Staff, but in no group: no permission at all."""
    return get_user_model().objects.create_user("dave", "dave@example.com", "dave-password-1", is_staff=True)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def as_bob(bob) -> Client:
    return logged_in(bob)


@pytest.fixture
def as_alice(alice) -> Client:
    return logged_in(alice)


def make_trigger(flow: Flow, *, status: str = Trigger.Status.FAILED, inputs: dict[str, Any] | None = None,
                 source: str = Trigger.Source.API, **fields: Any) -> Trigger:
    """A trigger row as a past dispatch left it (no validation, no enqueue)."""
    if status == Trigger.Status.FAILED:
        fields.setdefault("error_code", "UNKNOWN_EXCEPTION")
        fields.setdefault("error_message", "An error occurred when executing a flow interview.")
    return Trigger.objects.create(flow=flow, inputs=dict(INPUTS if inputs is None else inputs), status=status,
                                  source=source, attempts=1, **fields)


def rows(response) -> list[int]:
    """The trigger ids a console list page shows, in order."""
    return [t.pk for t in response.context["rows"]]
