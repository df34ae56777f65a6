"""Trigger services: create (validated, idempotent, enqueued after commit), dispatch with retries, resend, sweep."""

from __future__ import annotations

import datetime as dt

import pytest
import responses
from cryptography.fernet import Fernet
from django.utils import timezone

from flows import services
from flows.inputs import InputValidationError
from flows.models import Exchange, Trigger
from tests.conftest import MY_DOMAIN

TOKEN_URL = f"{MY_DOMAIN}/services/oauth2/token"
INVOKE_URL = f"{MY_DOMAIN}/services/data/v65.0/actions/custom/flow/On_Demand_Flow"
TOKEN = {"access_token": "00DS7000000oxzo!AR8AQP.service-token", "instance_url": MY_DOMAIN, "token_type": "Bearer"}
OUTPUTS = {"Flow__InterviewStatus": "Finished", "MemberID": "0lMal000000DCJVEA4"}
SUCCESS = [{"actionName": "On_Demand_Flow", "errors": None, "isSuccess": True, "outputValues": OUTPUTS}]
FAILURE = [{"actionName": "On_Demand_Flow", "isSuccess": False, "outputValues": None, "errors": [
    {"statusCode": "UNKNOWN_EXCEPTION", "message": "An error occurred when executing a flow interview."}]}]
INPUTS = {"IndividualId": "003Ho00002AlRM8IAN", "EmailAddress": "ada@example.com"}


@pytest.fixture(autouse=True)
def _no_broker(enqueued):
    """Task enqueues are recorded (tests/conftest.py's `enqueued`), never sent."""


@pytest.fixture
def sf():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def salesforce(sf):
    """Salesforce with a working token; each test adds the invoke answers it needs."""
    sf.post(TOKEN_URL, json=TOKEN)
    return sf


def fire(flow, inputs=INPUTS, **options) -> Trigger:
    options.setdefault("source", Trigger.Source.API)
    options.setdefault("actor_label", "tests")
    return services.trigger_create(flow=flow, inputs=inputs, **options)


def make_due(trigger: Trigger) -> None:
    Trigger.objects.filter(pk=trigger.pk).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))


# --- create ----------------------------------------------------------------------------------------------


def test_create_stores_a_queued_trigger_and_enqueues_its_id_after_commit(flow, alice, enqueued,
                                                                         django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        trigger = fire(flow, {**INPUTS, "TelephoneNumber": None}, source=Trigger.Source.ADMIN, actor=alice)
        assert enqueued == []  # nothing reaches the broker before the row is committed

    assert len(callbacks) == 1
    assert enqueued == [((trigger.pk,), None, {"countdown": None})]
    stored = Trigger.objects.get()
    assert (stored.pk, stored.status, stored.attempts, stored.source, stored.actor) == (
        trigger.pk, Trigger.Status.QUEUED, 0, Trigger.Source.ADMIN, alice)
    assert stored.inputs == INPUTS  # None values dropped
    assert stored.next_attempt_at is not None and stored.enqueued_at is not None
    assert trigger.replayed is False


def test_invalid_inputs_store_nothing(flow, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(InputValidationError) as caught:
        fire(flow, {"Bogus": 1, "EmailAddress": 7})

    assert set(caught.value.errors) == {"Bogus", "EmailAddress", "IndividualId"}
    assert not Trigger.objects.exists()
    assert callbacks == []


def test_the_same_idempotency_key_and_inputs_replay_the_trigger(flow, enqueued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = fire(flow, idempotency_key="order-1001")
    with django_capture_on_commit_callbacks(execute=True):
        again = fire(flow, dict(reversed(INPUTS.items())), idempotency_key="order-1001")

    assert again.pk == first.pk
    assert (first.replayed, again.replayed) == (False, True)
    assert Trigger.objects.count() == 1
    assert len(enqueued) == 1


def test_the_same_idempotency_key_with_other_inputs_conflicts(flow):
    first = fire(flow, idempotency_key="order-1001")

    with pytest.raises(services.IdempotencyConflict) as caught:
        fire(flow, {**INPUTS, "EmailAddress": "grace@example.com"}, idempotency_key="order-1001")

    assert caught.value.existing.pk == first.pk
    assert Trigger.objects.count() == 1


def test_an_idempotency_key_is_per_flow(org, flow):
    from tests.conftest import make_flow

    other = make_flow(org, "Other_Flow")

    assert fire(flow, idempotency_key="k").pk != fire(other, idempotency_key="k").pk


@pytest.mark.parametrize("deactivate", ["flow", "org"])
def test_an_inactive_flow_or_org_is_refused(flow, deactivate):
    target = flow if deactivate == "flow" else flow.org
    target.is_active = False
    target.save()

    with pytest.raises(InputValidationError) as caught:
        fire(flow)

    assert "not active" in caught.value.errors["flow"][0]
    assert not Trigger.objects.exists()


# --- dispatch --------------------------------------------------------------------------------------------


def test_dispatch_success(salesforce, flow):
    salesforce.post(INVOKE_URL, json=SUCCESS)
    trigger = fire(flow)

    services.trigger_dispatch(trigger_id=trigger.pk)

    trigger.refresh_from_db()
    assert (trigger.status, trigger.attempts, trigger.outputs) == (Trigger.Status.SUCCEEDED, 1, OUTPUTS)
    assert (trigger.error_code, trigger.error_message, trigger.next_attempt_at) == ("", "", None)
    assert trigger.finished_at is not None
    assert Exchange.objects.get(kind=Exchange.Kind.TOKEN).trigger is None  # a token serves many triggers
    invoke = Exchange.objects.get(kind=Exchange.Kind.INVOKE)
    assert invoke.trigger_id == trigger.pk
    assert '"IndividualId": "003Ho00002AlRM8IAN"' in invoke.request_body


def test_a_per_input_failure_fails_without_retry(salesforce, flow, enqueued, django_capture_on_commit_callbacks):
    salesforce.post(INVOKE_URL, status=400, json=FAILURE)
    trigger = fire(flow)

    with django_capture_on_commit_callbacks(execute=True):
        services.trigger_dispatch(trigger_id=trigger.pk)

    trigger.refresh_from_db()
    assert (trigger.status, trigger.attempts) == (Trigger.Status.FAILED, 1)
    assert trigger.error_code == "UNKNOWN_EXCEPTION"
    assert trigger.error_message == "An error occurred when executing a flow interview."
    assert trigger.finished_at is not None and trigger.next_attempt_at is None
    assert enqueued == []


def test_a_permanent_error_fails_at_once_with_its_hint(salesforce, flow):
    salesforce.post(INVOKE_URL, status=404, json=[{"message": "The requested resource does not exist",
                                                   "errorCode": "NOT_FOUND"}])
    trigger = fire(flow)

    services.trigger_dispatch(trigger_id=trigger.pk)

    trigger.refresh_from_db()
    assert (trigger.status, trigger.attempts, trigger.error_code) == (Trigger.Status.FAILED, 1, "NOT_FOUND")
    assert "check the api name" in trigger.hint.lower()


def test_a_503_retries_after_each_delay_then_fails(salesforce, flow, settings, enqueued,
                                                   django_capture_on_commit_callbacks):
    settings.FLOWGATE_RETRY_DELAYS = [30, 60]
    salesforce.post(INVOKE_URL, status=503, body="Service Unavailable", content_type="text/plain")
    trigger = fire(flow)

    for attempt, delay in enumerate(settings.FLOWGATE_RETRY_DELAYS, start=1):
        before = timezone.now()
        with django_capture_on_commit_callbacks(execute=True):
            services.trigger_dispatch(trigger_id=trigger.pk)
        trigger.refresh_from_db()
        assert (trigger.status, trigger.attempts) == (Trigger.Status.RETRYING, attempt)
        assert (trigger.error_code, trigger.error_message) == ("HTTP_503", "Service Unavailable")
        assert trigger.finished_at is None
        wait = (trigger.next_attempt_at - before).total_seconds()
        assert delay * 0.8 - 1 <= wait <= delay * 1.2 + 1  # the delay, with jitter
        assert trigger.enqueued_at == trigger.next_attempt_at
        (args, _, options) = enqueued[-1]
        assert args == (trigger.pk,) and delay * 0.8 <= options["countdown"] <= delay * 1.2
        services.trigger_dispatch(trigger_id=trigger.pk)  # too early: not claimed, nothing sent
        assert Trigger.objects.get(pk=trigger.pk).attempts == attempt
        make_due(trigger)

    services.trigger_dispatch(trigger_id=trigger.pk)

    trigger.refresh_from_db()
    assert (trigger.status, trigger.attempts, trigger.error_code) == (Trigger.Status.FAILED, 3, "HTTP_503")
    assert trigger.finished_at is not None and trigger.next_attempt_at is None
    assert len(salesforce.calls) == 1 + 3  # one token, three invokes
    assert len(enqueued) == 2


def test_a_long_delay_waits_in_the_database_for_the_sweep(salesforce, flow, settings, enqueued,
                                                          django_capture_on_commit_callbacks):
    settings.FLOWGATE_RETRY_DELAYS = [600]
    settings.FLOWGATE_MAX_COUNTDOWN = 60
    salesforce.post(INVOKE_URL, status=503)
    trigger = fire(flow)

    with django_capture_on_commit_callbacks(execute=True):
        services.trigger_dispatch(trigger_id=trigger.pk)

    trigger.refresh_from_db()
    assert trigger.status == Trigger.Status.RETRYING
    assert trigger.enqueued_at is None
    assert enqueued == []


@pytest.mark.parametrize("status", [Trigger.Status.SUCCEEDED, Trigger.Status.FAILED, Trigger.Status.SENDING])
def test_a_finished_or_sending_trigger_is_not_sent_again(sf, flow, status):
    trigger = fire(flow)
    Trigger.objects.filter(pk=trigger.pk).update(status=status, attempts=1,
                                                 next_attempt_at=timezone.now() - dt.timedelta(minutes=1))
    before = Trigger.objects.values().get(pk=trigger.pk)

    services.trigger_dispatch(trigger_id=trigger.pk)

    assert len(sf.calls) == 0
    assert Trigger.objects.values().get(pk=trigger.pk) == before
    assert not Exchange.objects.exists()


def test_a_flow_deactivated_after_queueing_fails_without_a_call(sf, flow):
    trigger = fire(flow)
    flow.is_active = False
    flow.save()

    services.trigger_dispatch(trigger_id=trigger.pk)

    trigger.refresh_from_db()
    assert (trigger.status, trigger.error_code) == (Trigger.Status.FAILED, "INACTIVE")
    assert len(sf.calls) == 0


def test_credentials_under_a_lost_key_fail_with_a_hint(sf, flow, settings):
    trigger = fire(flow)
    settings.FLOWGATE_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    services.trigger_dispatch(trigger_id=trigger.pk)

    trigger.refresh_from_db()
    assert (trigger.status, trigger.error_code) == (Trigger.Status.FAILED, "DECRYPTION_FAILED")
    assert "encryption key" in trigger.hint
    assert len(sf.calls) == 0


# --- resend ----------------------------------------------------------------------------------------------


def test_resend_makes_a_new_trigger_linked_to_the_original(salesforce, flow, alice, enqueued,
                                                           django_capture_on_commit_callbacks):
    salesforce.post(INVOKE_URL, status=400, json=FAILURE)
    original = fire(flow)
    services.trigger_dispatch(trigger_id=original.pk)
    original.refresh_from_db()
    before = Trigger.objects.values().get(pk=original.pk)

    with django_capture_on_commit_callbacks(execute=True):
        resent = services.trigger_resend(trigger=original, actor=alice)

    assert resent.pk != original.pk
    resent.refresh_from_db()
    assert (resent.status, resent.source, resent.resend_of, resent.actor) == (
        Trigger.Status.QUEUED, Trigger.Source.RESEND, original, alice)
    assert resent.inputs == original.inputs
    assert resent.who == "alice"
    assert enqueued == [((resent.pk,), None, {"countdown": None})]
    assert Trigger.objects.values().get(pk=original.pk) == before


# --- sweep -----------------------------------------------------------------------------------------------


def test_the_sweep_requeues_a_queued_trigger_whose_message_got_lost(flow, settings, enqueued, monkeypatch):
    settings.FLOWGATE_SWEEP_GRACE = 60
    monkeypatch.setattr(services, "_dispatch_queue_length", lambda: 0)  # the queue is empty: the message is lost
    lost, recent = fire(flow), fire(flow)
    long_ago = timezone.now() - dt.timedelta(seconds=120)
    Trigger.objects.filter(pk=lost.pk).update(enqueued_at=long_ago, next_attempt_at=long_ago)
    Trigger.objects.filter(pk=recent.pk).update(enqueued_at=timezone.now() - dt.timedelta(seconds=5))

    assert services.trigger_sweep() == {"requeued": 1, "recovered": 0}

    assert enqueued == [((lost.pk,), None, {"countdown": None})]
    assert Trigger.objects.get(pk=lost.pk).enqueued_at > long_ago
    assert services.trigger_sweep() == {"requeued": 0, "recovered": 0}  # now on its way: not sent twice


def test_the_sweep_leaves_a_message_that_waits_in_a_deep_queue(flow, settings, enqueued, monkeypatch):
    settings.FLOWGATE_SWEEP_GRACE = 60
    monkeypatch.setattr(services, "_dispatch_queue_length", lambda: 5000)
    waiting = fire(flow)
    long_ago = timezone.now() - dt.timedelta(seconds=120)
    Trigger.objects.filter(pk=waiting.pk).update(enqueued_at=long_ago, next_attempt_at=long_ago)

    assert services.trigger_sweep() == {"requeued": 0, "recovered": 0}
    assert enqueued == []


def test_only_one_sweep_runs_at_a_time(flow, enqueued):
    from django.core.cache import cache

    cache.add(services.SWEEP_LOCK, 1, timeout=30)  # another worker is sweeping
    Trigger.objects.filter(pk=fire(flow).pk).update(enqueued_at=None)

    assert services.trigger_sweep()["skipped"] == 1
    assert enqueued == []


def test_the_sweep_enqueues_a_due_trigger_with_no_message(flow, enqueued):
    trigger = fire(flow)
    Trigger.objects.filter(pk=trigger.pk).update(enqueued_at=None)

    services.trigger_sweep()

    assert enqueued == [((trigger.pk,), None, {"countdown": None})]


def test_the_sweep_takes_back_a_trigger_whose_worker_was_lost(flow, settings, enqueued):
    settings.FLOWGATE_RETRY_DELAYS = [30]
    lost, busy = fire(flow), fire(flow)
    Trigger.objects.filter(pk=lost.pk).update(status=Trigger.Status.SENDING, attempts=1,
                                              next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    Trigger.objects.filter(pk=busy.pk).update(status=Trigger.Status.SENDING, attempts=1,
                                              next_attempt_at=timezone.now() + dt.timedelta(minutes=2))

    assert services.trigger_sweep()["recovered"] == 1

    lost.refresh_from_db()
    assert (lost.status, lost.error_code, lost.attempts) == (Trigger.Status.RETRYING, "WORKER_LOST", 1)
    assert lost.next_attempt_at > timezone.now()
    assert Trigger.objects.get(pk=busy.pk).status == Trigger.Status.SENDING


def test_a_lost_worker_on_the_last_attempt_fails_the_trigger(flow, settings):
    settings.FLOWGATE_RETRY_DELAYS = [30]
    trigger = fire(flow)
    Trigger.objects.filter(pk=trigger.pk).update(status=Trigger.Status.SENDING, attempts=2,
                                                 next_attempt_at=timezone.now() - dt.timedelta(seconds=1))

    services.trigger_sweep()

    trigger.refresh_from_db()
    assert (trigger.status, trigger.error_code) == (Trigger.Status.FAILED, "WORKER_LOST")
    assert trigger.finished_at is not None
