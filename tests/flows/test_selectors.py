"""trigger_for_dispatch: its hand-built SQL must load exactly what the ORM would."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from flows.models import ExternalClientApp, Flow, Org, Trigger
from flows.selectors import flow_with_org, trigger_for_dispatch
from tests.conftest import make_org


def concrete_values(obj) -> dict:
    return {field.attname: getattr(obj, field.attname) for field in type(obj)._meta.concrete_fields}


@pytest.fixture
def full_trigger(flow, alice) -> Trigger:
    """A trigger with every kind of column set: JSON, dates, a user, booleans, numbers, text."""
    now = timezone.now()
    Org.objects.filter(pk=flow.org_id).update(paused_until=now + dt.timedelta(minutes=5), max_concurrent_calls=7)
    return Trigger.objects.create(
        flow=flow, inputs={"EmailAddress": "ada@example.com", "IndividualId": "003", "Tags": ["a", 1, None]},
        outputs={"Flow__InterviewStatus": "Finished"}, source=Trigger.Source.API, actor=alice, actor_label="alice",
        attempts=2, status=Trigger.Status.RETRYING, next_attempt_at=now, error_code="UNKNOWN_EXCEPTION",
        error_message="Ünïcode message", idempotency_key="order-1001",
    )


def test_loads_the_trigger_flow_and_org_as_the_orm_does_in_one_query(full_trigger):
    expected = Trigger.objects.select_related("flow__org").get(pk=full_trigger.pk)
    with CaptureQueriesContext(connection) as queries:
        loaded = trigger_for_dispatch(full_trigger.pk)
        assert concrete_values(loaded) == concrete_values(expected)
        assert concrete_values(loaded.flow) == concrete_values(expected.flow)
        assert concrete_values(loaded.flow.org) == concrete_values(expected.flow.org)
    assert len(queries) == 1
    assert loaded.inputs["Tags"] == ["a", 1, None]
    assert loaded.flow.org.paused_until == expected.flow.org.paused_until and loaded.flow.org.paused_until
    assert not loaded._state.adding and loaded._state.db == "default"


def test_credential_version_is_the_active_apps_and_changes_with_a_rotation(full_trigger):
    app = ExternalClientApp.objects.get(org=full_trigger.flow.org, is_active=True)
    assert trigger_for_dispatch(full_trigger.pk).credential_version == app.credential_version
    ExternalClientApp.objects.filter(pk=app.pk).update(rotated_at=timezone.now() + dt.timedelta(hours=1))
    app.refresh_from_db()
    assert trigger_for_dispatch(full_trigger.pk).credential_version == app.credential_version


def test_credential_version_is_none_without_an_active_app(full_trigger):
    ExternalClientApp.objects.filter(org=full_trigger.flow.org).update(is_active=False)
    assert trigger_for_dispatch(full_trigger.pk).credential_version is None


def test_an_unknown_trigger_raises_does_not_exist(db):
    with pytest.raises(Trigger.DoesNotExist):
        trigger_for_dispatch(10**12)


def test_flow_with_org_loads_the_flow_and_its_org_as_the_orm_does(flow):
    expected = Flow.objects.select_related("org").get(pk=flow.pk)
    with CaptureQueriesContext(connection) as queries:
        loaded = flow_with_org(org_slug=flow.org.slug, api_name=flow.api_name)
        assert concrete_values(loaded) == concrete_values(expected)
        assert concrete_values(loaded.org) == concrete_values(expected.org)
    assert len(queries) == 1


def test_flow_with_org_needs_both_names_to_match(flow):
    other = make_org(slug="other")
    assert flow_with_org(org_slug=other.slug, api_name=flow.api_name) is None
    assert flow_with_org(org_slug=flow.org.slug, api_name="Another_Flow") is None
