"""Per-org pacing: the REQUEST_LIMIT_EXCEEDED pause and the concurrent-call cap never use up a retry."""

from __future__ import annotations

import datetime as dt

import pytest
import responses
from django.utils import timezone

from flows import services
from flows.models import Org, Trigger
from flows.pacing import org_slot
from tests.conftest import MY_DOMAIN

TOKEN_URL = f"{MY_DOMAIN}/services/oauth2/token"
INVOKE_URL = f"{MY_DOMAIN}/services/data/v65.0/actions/custom/flow/On_Demand_Flow"
LIMIT = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]


@pytest.fixture(autouse=True)
def _no_broker(enqueued):
    """Task enqueues are recorded, never sent."""


def queued(flow) -> Trigger:
    return services.trigger_create(flow=flow, inputs={"IndividualId": "003X"}, source=Trigger.Source.API)


@responses.activate
def test_request_limit_pauses_the_org_and_keeps_the_triggers_retries(flow, settings):
    settings.FLOWGATE_LIMIT_PAUSE_SECONDS = 600
    responses.post(TOKEN_URL, json={"access_token": "00D!tok-limit-0001", "instance_url": MY_DOMAIN})
    responses.post(INVOKE_URL, status=403, json=LIMIT)
    trigger = queued(flow)

    trigger = services.trigger_dispatch(trigger_id=trigger.pk)

    org = Org.objects.get(pk=flow.org_id)
    assert org.paused_until is not None
    assert 590 < (org.paused_until - timezone.now()).total_seconds() <= 600
    assert (trigger.status, trigger.attempts, trigger.error_code) == ("retrying", 0, "REQUEST_LIMIT_EXCEEDED")
    assert trigger.next_attempt_at == org.paused_until
    assert "no retry is used up" in trigger.hint


@responses.activate
def test_a_paused_org_is_not_called_and_its_triggers_wait_for_the_pause(flow):
    until = timezone.now() + dt.timedelta(minutes=10)
    Org.objects.filter(pk=flow.org_id).update(paused_until=until)
    trigger = queued(flow)

    trigger = services.trigger_dispatch(trigger_id=trigger.pk)

    assert len(responses.calls) == 0
    assert (trigger.status, trigger.attempts, trigger.next_attempt_at) == ("queued", 0, until)


@responses.activate
def test_the_pause_ends_by_itself(flow):
    Org.objects.filter(pk=flow.org_id).update(paused_until=timezone.now() - dt.timedelta(seconds=1))
    responses.post(TOKEN_URL, json={"access_token": "00D!tok-limit-0002", "instance_url": MY_DOMAIN})
    responses.post(INVOKE_URL, json=[{"actionName": "On_Demand_Flow", "isSuccess": True, "outputValues": {}}])

    trigger = services.trigger_dispatch(trigger_id=queued(flow).pk)

    assert trigger.status == Trigger.Status.SUCCEEDED


@responses.activate
def test_an_org_at_its_call_cap_puts_the_trigger_back_without_an_attempt(flow, settings):
    settings.FLOWGATE_SLOT_WAIT = 0
    org = Org.objects.get(pk=flow.org_id)
    org.max_concurrent_calls = 1
    org.save()
    trigger = queued(flow)

    with org_slot(org) as held:  # another worker's call is in flight
        assert held
        trigger = services.trigger_dispatch(trigger_id=trigger.pk)

    assert len(responses.calls) == 0
    assert (trigger.status, trigger.attempts) == ("queued", 0)
    assert trigger.next_attempt_at > timezone.now()


def test_slots_are_shared_up_to_the_cap_and_freed_after_use(org, settings):
    settings.FLOWGATE_SLOT_WAIT = 0
    org.max_concurrent_calls = 2
    with org_slot(org) as first, org_slot(org) as second, org_slot(org) as third:
        assert (first, second, third) == (True, True, False)
    with org_slot(org) as again:
        assert again
