"""Sent once, or someone knows: fenced results, unknown outcomes and the flow's delivery setting, the trigger's key
in the flow's trigger id input, the two REQUEST_LIMIT_EXCEEDED, and the lease that covers a whole dispatch.

Salesforce is mocked with `responses`; what happens "meanwhile" (a sweep taking a trigger back, another worker
settling it) is done inside the mocked call, at the moment the real one would be in flight.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from urllib.parse import quote_plus

import pytest
import requests
import responses
from django.utils import timezone

from flows import services
from flows.inputs import InputValidationError
from flows.models import Exchange, Flow, FlowInput, Org, Trigger
from flows.pacing import lease_seconds
from flows.salesforce import SalesforceClient, SalesforceError, tokens
from tests.conftest import MY_DOMAIN, make_org

TOKEN_URL = f"{MY_DOMAIN}/services/oauth2/token"
INVOKE_URL = f"{MY_DOMAIN}/services/data/v65.0/actions/custom/flow/On_Demand_Flow"
TOKEN = {"access_token": "00DS7000000oxzo!AR8AQP.delivery-token", "instance_url": MY_DOMAIN}
SUCCESS = [{"actionName": "On_Demand_Flow", "errors": None, "isSuccess": True,
            "outputValues": {"Flow__InterviewStatus": "Finished"}}]
FAILURE = [{"actionName": "On_Demand_Flow", "isSuccess": False, "outputValues": None, "errors": [
    {"statusCode": "UNKNOWN_EXCEPTION", "message": "An error occurred when executing a flow interview."}]}]
INPUTS = {"IndividualId": "003Ho00002AlRM8IAN", "EmailAddress": "ada@example.com"}
TIMEOUT = requests.ReadTimeout("HTTPSConnectionPool(host='acme.my.salesforce.com', port=443): Read timed out.")
DAILY = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
LONG_TXN = [{"message": "ConcurrentPerOrgLongTxn Limit exceeded", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]


@pytest.fixture(autouse=True)
def _no_broker(enqueued):
    """Task enqueues are recorded (tests/conftest.py's `enqueued`), never sent."""


@pytest.fixture
def sf():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json=TOKEN)
        yield mock


def fire(flow: Flow, inputs: dict = INPUTS) -> Trigger:
    return services.trigger_create(flow=flow, inputs=inputs, source=Trigger.Source.API, actor_label="tests")


def make_due(trigger: Trigger) -> None:
    Trigger.objects.filter(pk=trigger.pk).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))


def invokes(sf: responses.RequestsMock) -> list:
    return [call for call in sf.calls if call.request.url == INVOKE_URL]


def sent_inputs(call) -> list[dict]:
    return json.loads(call.request.body)["inputs"]


def at_most_once(flow: Flow) -> Flow:
    flow.delivery = Flow.Delivery.AT_MOST_ONCE
    flow.save()
    return flow


# --- fencing ------------------------------------------------------------------------------------------------


def take_back_and_settle_elsewhere(trigger_id: int) -> None:
    """What happens while a stale worker's call is in flight: its lease ran out, the sweep took the trigger back
    and another worker claimed it (a new token) and sent it successfully."""
    Trigger.objects.filter(pk=trigger_id).update(
        status=Trigger.Status.SUCCEEDED, claim_token="b" * 32, attempts=2, outputs={"by": "worker B"},
        error_code="", next_attempt_at=None, finished_at=timezone.now())


@pytest.mark.parametrize("late_answer", [
    dict(body=TIMEOUT),
    dict(status=503, body="Service Unavailable"),
    dict(status=400, json=FAILURE),
    dict(json=SUCCESS),
], ids=["timeout", "503", "per-input-failure", "success"])
def test_a_result_that_comes_after_the_trigger_was_taken_back_changes_nothing(sf, flow, enqueued, late_answer,
                                                                              django_capture_on_commit_callbacks):
    trigger = fire(flow)

    def answer_late(request):
        take_back_and_settle_elsewhere(trigger.pk)
        if "body" in late_answer and isinstance(late_answer["body"], Exception):
            raise late_answer["body"]
        return late_answer.get("status", 200), {}, json.dumps(late_answer["json"]) if "json" in late_answer \
            else late_answer["body"]

    sf.add_callback(responses.POST, INVOKE_URL, callback=answer_late)
    with django_capture_on_commit_callbacks(execute=True):
        services.trigger_dispatch(trigger_id=trigger.pk)

    stored = Trigger.objects.get(pk=trigger.pk)
    assert (stored.status, stored.attempts, stored.outputs, stored.error_code) == (
        Trigger.Status.SUCCEEDED, 2, {"by": "worker B"}, "")
    assert enqueued == []  # no retry was scheduled by the stale worker
    late = Exchange.objects.get(kind=Exchange.Kind.INVOKE)
    assert (late.trigger_id, late.attempt, late.late) == (trigger.pk, 1, True)


def test_a_result_in_time_is_applied_and_not_late(sf, flow):
    sf.post(INVOKE_URL, json=SUCCESS)
    trigger = fire(flow)

    services.trigger_dispatch(trigger_id=trigger.pk)

    assert Trigger.objects.get(pk=trigger.pk).status == Trigger.Status.SUCCEEDED
    exchange = Exchange.objects.get(kind=Exchange.Kind.INVOKE)
    assert (exchange.attempt, exchange.late, exchange.classification) == (1, False, Exchange.Classification.RAN)


def test_each_claim_gets_its_own_token(sf, flow, settings):
    settings.FLOWGATE_RETRY_DELAYS = [30]
    sf.post(INVOKE_URL, status=503)
    trigger = fire(flow)

    services.trigger_dispatch(trigger_id=trigger.pk)
    first = Trigger.objects.get(pk=trigger.pk).claim_token
    make_due(trigger)
    services.trigger_dispatch(trigger_id=trigger.pk)

    second = Trigger.objects.get(pk=trigger.pk).claim_token
    assert len(first) == len(second) == 32 and first != second


def test_a_stale_copy_of_a_claimed_trigger_sends_nothing(sf, flow, monkeypatch):
    """A dispatch holding an old read of the row (queued) while another worker has claimed it meanwhile."""
    trigger = fire(flow)
    stale = services.trigger_for_dispatch(trigger.pk)
    Trigger.objects.filter(pk=trigger.pk).update(status=Trigger.Status.SENDING, attempts=1, claim_token="a" * 32,
                                                 next_attempt_at=timezone.now() + dt.timedelta(minutes=2))
    monkeypatch.setattr(services, "trigger_for_dispatch", lambda trigger_id: stale)

    services.trigger_dispatch(trigger_id=trigger.pk)

    assert invokes(sf) == []
    stored = Trigger.objects.get(pk=trigger.pk)
    assert (stored.status, stored.attempts, stored.claim_token) == (Trigger.Status.SENDING, 1, "a" * 32)


def test_a_batch_takes_only_triggers_still_waiting(sf, flow, monkeypatch, django_capture_on_commit_callbacks):
    """Between listing a flow's due triggers and claiming them, one was claimed elsewhere: the batch leaves it."""
    flow.batch_enabled = True
    flow.save()
    mine, taken = fire(flow, {"IndividualId": "003MINE"}), fire(flow, {"IndividualId": "003TAKEN"})
    Trigger.objects.filter(pk=taken.pk).update(status=Trigger.Status.SENDING, attempts=1, claim_token="c" * 32,
                                               next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    monkeypatch.setattr(services, "_due_ids", lambda flow, now: [mine.pk, taken.pk])
    sf.post(INVOKE_URL, json=SUCCESS)

    assert services.flow_batch_dispatch(flow_id=flow.pk) == 1

    assert [element["IndividualId"] for element in sent_inputs(invokes(sf)[0])] == ["003MINE"]
    stored = Trigger.objects.get(pk=taken.pk)
    assert (stored.status, stored.claim_token, stored.attempts) == (Trigger.Status.SENDING, "c" * 32, 1)
    assert Trigger.objects.get(pk=mine.pk).status == Trigger.Status.SUCCEEDED


def test_a_batch_result_skips_a_trigger_taken_back_meanwhile(sf, flow):
    flow.batch_enabled = True
    flow.save()
    kept, lost = fire(flow, {"IndividualId": "003KEPT"}), fire(flow, {"IndividualId": "003LOST"})

    def answer(request):
        take_back_and_settle_elsewhere(lost.pk)
        return 200, {}, json.dumps(SUCCESS * 2)

    sf.add_callback(responses.POST, INVOKE_URL, callback=answer)
    services.flow_batch_dispatch(flow_id=flow.pk)

    assert Trigger.objects.get(pk=kept.pk).status == Trigger.Status.SUCCEEDED
    assert Trigger.objects.get(pk=lost.pk).outputs == {"by": "worker B"}
    assert Exchange.objects.get(kind=Exchange.Kind.INVOKE).late is False  # one of its triggers was still held


def test_the_sweep_leaves_a_trigger_its_worker_settled_meanwhile(flow, monkeypatch):
    trigger = fire(flow)
    Trigger.objects.filter(pk=trigger.pk).update(status=Trigger.Status.SENDING, attempts=1, claim_token="d" * 32,
                                                 next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    real_after_failure = services._after_failure

    def worker_finishes_first(trigger, error, claim):
        Trigger.objects.filter(pk=trigger.pk).update(status=Trigger.Status.SUCCEEDED, finished_at=timezone.now())
        return real_after_failure(trigger, error, claim)

    monkeypatch.setattr(services, "_after_failure", worker_finishes_first)

    assert services.trigger_sweep()["recovered"] == 0
    stored = Trigger.objects.get(pk=trigger.pk)
    assert (stored.status, stored.error_code) == (Trigger.Status.SUCCEEDED, "")


# --- retries and jitter ---------------------------------------------------------------------------------------


def test_twenty_failures_at_once_get_twenty_different_retry_times(sf, flow, settings, monkeypatch):
    settings.FLOWGATE_RETRY_DELAYS = [60]
    sf.post(INVOKE_URL, status=503)
    now = timezone.now()
    monkeypatch.setattr(services.timezone, "now", lambda: now)  # the same instant for all of them
    triggers = [fire(flow, {"IndividualId": f"003H{n:02}"}) for n in range(20)]

    for trigger in triggers:
        services.trigger_dispatch(trigger_id=trigger.pk)

    retry_at = [Trigger.objects.get(pk=t.pk).next_attempt_at for t in triggers]
    assert len(set(retry_at)) == 20
    delays = sorted((at - now).total_seconds() for at in retry_at)
    assert 48 <= delays[0] and delays[-1] <= 72 and delays[-1] - delays[0] > 5


# --- unknown outcomes and delivery ----------------------------------------------------------------------------


def test_at_least_once_retries_an_unknown_outcome_and_says_it_may_have_run(sf, flow, settings, enqueued,
                                                                          django_capture_on_commit_callbacks):
    settings.FLOWGATE_RETRY_DELAYS = [30]
    sf.post(INVOKE_URL, body=TIMEOUT)
    trigger = fire(flow)

    with django_capture_on_commit_callbacks(execute=True):
        services.trigger_dispatch(trigger_id=trigger.pk)

    stored = Trigger.objects.get(pk=trigger.pk)
    assert (stored.status, stored.error_code) == (Trigger.Status.RETRYING, "TIMEOUT")
    assert "may have run" in stored.hint
    assert len(enqueued) == 1
    assert Exchange.objects.get(kind=Exchange.Kind.INVOKE).classification == Exchange.Classification.UNKNOWN


@pytest.mark.parametrize("answer", [
    dict(body=TIMEOUT),
    dict(body=requests.ConnectionError(
        "('Connection aborted.', RemoteDisconnected('Remote end closed connection without response'))")),
    dict(status=502, body="<html>Bad Gateway</html>", content_type="text/html"),
    dict(status=504, body="<html>Gateway Timeout</html>", content_type="text/html"),
    dict(status=500, json=[{"message": "An unexpected error occurred.", "errorCode": "UNKNOWN_EXCEPTION"}]),
], ids=["timeout", "reset", "502", "504", "500"])
def test_at_most_once_never_retries_an_unknown_outcome(sf, flow, enqueued, answer,
                                                       django_capture_on_commit_callbacks):
    at_most_once(flow)
    sf.post(INVOKE_URL, **answer)
    trigger = fire(flow)

    with django_capture_on_commit_callbacks(execute=True):
        services.trigger_dispatch(trigger_id=trigger.pk)

    stored = Trigger.objects.get(pk=trigger.pk)
    assert (stored.status, stored.attempts, stored.next_attempt_at) == (Trigger.Status.UNKNOWN, 1, None)
    assert stored.finished_at is not None and stored.is_final
    assert "Mark as delivered" in stored.hint and "at most once" in stored.hint
    assert enqueued == []
    make_due(trigger)
    services.trigger_dispatch(trigger_id=trigger.pk)  # a redelivered message: final, nothing sent
    assert len(invokes(sf)) == 1


@pytest.mark.parametrize("answer", [
    dict(status=503, body="Service Unavailable"),
    dict(status=401, json=[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]),
    dict(body=requests.ConnectTimeout("Connection to acme.my.salesforce.com timed out.")),
], ids=["503", "401-twice", "connect-timeout"])
def test_at_most_once_retries_what_certainly_did_not_run(sf, flow, settings, answer):
    settings.FLOWGATE_RETRY_DELAYS = [30]
    at_most_once(flow)
    sf.post(INVOKE_URL, **answer)
    trigger = fire(flow)

    services.trigger_dispatch(trigger_id=trigger.pk)

    assert Trigger.objects.get(pk=trigger.pk).status in (Trigger.Status.RETRYING, Trigger.Status.FAILED)
    assert Trigger.objects.get(pk=trigger.pk).status != Trigger.Status.UNKNOWN


def test_a_lost_worker_of_an_at_most_once_flow_leaves_the_trigger_unknown(flow, enqueued):
    at_most_once(flow)
    trigger = fire(flow)
    Trigger.objects.filter(pk=trigger.pk).update(status=Trigger.Status.SENDING, attempts=1, claim_token="e" * 32,
                                                 next_attempt_at=timezone.now() - dt.timedelta(seconds=1))

    assert services.trigger_sweep()["recovered"] == 1

    stored = Trigger.objects.get(pk=trigger.pk)
    assert (stored.status, stored.error_code) == (Trigger.Status.UNKNOWN, "WORKER_LOST")
    assert "Mark as delivered" in stored.hint


def test_mark_as_delivered_records_who_and_when_once(flow, alice):
    trigger = fire(flow)
    Trigger.objects.filter(pk=trigger.pk).update(status=Trigger.Status.UNKNOWN, error_code="TIMEOUT")

    services.trigger_mark_delivered(trigger=trigger, actor=alice)

    stored = Trigger.objects.get(pk=trigger.pk)
    assert (stored.status, stored.delivered_by, stored.error_code) == (Trigger.Status.SUCCEEDED, alice, "TIMEOUT")
    assert stored.delivered_at is not None
    with pytest.raises(services.NotUnknown):
        services.trigger_mark_delivered(trigger=stored, actor=alice)


# --- the trigger's key and the flow's trigger id input --------------------------------------------------------


@pytest.fixture
def keyed_flow(flow) -> Flow:
    FlowInput.objects.create(flow=flow, name="FlowgateTriggerId", required=True, order=9)
    flow.trigger_id_input = "FlowgateTriggerId"
    flow.save()
    return flow


def test_the_key_is_sent_in_the_trigger_id_input_and_is_the_same_on_every_retry(sf, keyed_flow, settings):
    settings.FLOWGATE_RETRY_DELAYS = [30]
    sf.post(INVOKE_URL, status=503)
    sf.post(INVOKE_URL, json=SUCCESS)
    trigger = fire(keyed_flow)

    services.trigger_dispatch(trigger_id=trigger.pk)
    make_due(trigger)
    services.trigger_dispatch(trigger_id=trigger.pk)

    first, second = (sent_inputs(call)[0] for call in invokes(sf))
    assert first == second == {**INPUTS, "FlowgateTriggerId": str(trigger.key)}
    assert Trigger.objects.get(pk=trigger.pk).inputs == INPUTS  # the key is added at each call, never stored


def test_callers_cannot_fill_the_trigger_id_input(keyed_flow):
    with pytest.raises(InputValidationError) as caught:
        fire(keyed_flow, {**INPUTS, "FlowgateTriggerId": "mine"})

    assert "filled by Flowgate" in caught.value.errors["FlowgateTriggerId"][0]
    assert not Trigger.objects.exists()


def test_a_resend_is_a_new_trigger_with_a_new_key(sf, keyed_flow, alice):
    original = fire(keyed_flow)

    resend = services.trigger_resend(trigger=original, actor=alice)

    assert resend.key != original.key and resend.origin_id == original.pk
    assert resend.inputs == original.inputs


def test_without_a_trigger_id_input_nothing_is_added(sf, flow):
    sf.post(INVOKE_URL, json=SUCCESS)
    services.trigger_dispatch(trigger_id=fire(flow).pk)
    assert sent_inputs(invokes(sf)[0]) == [INPUTS]


# --- the two REQUEST_LIMIT_EXCEEDED -------------------------------------------------------------------------


def test_the_daily_limit_pauses_the_org_without_using_a_retry(sf, flow, settings):
    settings.FLOWGATE_LIMIT_PAUSE_SECONDS = 900
    sf.post(INVOKE_URL, status=403, json=DAILY)
    trigger = fire(flow)

    services.trigger_dispatch(trigger_id=trigger.pk)

    stored = Trigger.objects.get(pk=trigger.pk)
    assert (stored.status, stored.attempts) == (Trigger.Status.RETRYING, 0)
    paused_for = (Org.objects.get(pk=flow.org_id).paused_until - timezone.now()).total_seconds()
    assert 890 < paused_for <= 900
    assert "daily API requests" in stored.hint


def test_too_many_long_requests_back_off_seconds_without_pausing_or_using_a_retry(
        sf, flow, settings, enqueued, django_capture_on_commit_callbacks):
    settings.FLOWGATE_CONCURRENT_LIMIT_BACKOFF = 4
    sf.post(INVOKE_URL, status=403, json=LONG_TXN)
    triggers = [fire(flow, {"IndividualId": f"003L{n}"}) for n in range(8)]

    with django_capture_on_commit_callbacks(execute=True):
        for trigger in triggers:
            services.trigger_dispatch(trigger_id=trigger.pk)

    assert Org.objects.get(pk=flow.org_id).paused_until is None
    stored = Trigger.objects.filter(pk__in=[t.pk for t in triggers])
    assert {(t.status, t.attempts) for t in stored} == {(Trigger.Status.RETRYING, 0)}
    waits = [(t.next_attempt_at - timezone.now()).total_seconds() for t in stored]
    assert all(0 < wait <= 6.1 for wait in waits) and len({round(w, 3) for w in waits}) > 1  # seconds, jittered
    assert "clears within seconds" in stored[0].hint
    assert len(enqueued) == 8


def test_a_limit_message_we_do_not_know_is_not_taken_for_the_daily_one(sf, flow):
    sf.post(INVOKE_URL, status=403, json=[{"message": "Something new exceeded", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    services.trigger_dispatch(trigger_id=fire(flow).pk)
    assert Org.objects.get(pk=flow.org_id).paused_until is None


# --- per-input failures carry a hint --------------------------------------------------------------------------


def test_the_most_common_flow_failure_says_where_to_look(sf, flow):
    sf.post(INVOKE_URL, status=400, json=FAILURE)
    trigger = fire(flow)

    services.trigger_dispatch(trigger_id=trigger.pk)

    stored = Trigger.objects.get(pk=trigger.pk)
    assert (stored.status, stored.error_code) == (Trigger.Status.FAILED, "UNKNOWN_EXCEPTION")
    assert "Paused and Failed Flow Interviews" in stored.hint and "fault path" in stored.hint


def test_a_batch_failure_carries_the_hint_too(sf, flow):
    flow.batch_enabled = True
    flow.save()
    trigger = fire(flow)
    sf.post(INVOKE_URL, status=400, json=FAILURE)

    services.flow_batch_dispatch(flow_id=flow.pk)

    assert "Paused and Failed Flow Interviews" in Trigger.objects.get(pk=trigger.pk).hint


# --- the lease covers the whole dispatch ----------------------------------------------------------------------


def test_the_lease_is_three_calls_and_the_time_to_write_the_result(settings):
    settings.FLOWGATE_HTTP_CONNECT_TIMEOUT, settings.FLOWGATE_HTTP_READ_TIMEOUT = 5, 30
    assert lease_seconds() == 3 * 35 + 5


def test_no_call_starts_that_could_not_end_within_the_lease(sf, flow, monkeypatch):
    """A dispatch that spent its lease waiting (for a slot, for a token) sends nothing: the sweep could otherwise
    hand the trigger to another worker while the call is still out."""
    monkeypatch.setattr(services, "lease_seconds", lambda: 30.0)  # shorter than a call's 35 s cap
    trigger = fire(flow)

    services.trigger_dispatch(trigger_id=trigger.pk)

    assert len(sf.calls) == 0  # not even the token request: it, too, could outlast the lease
    stored = Trigger.objects.get(pk=trigger.pk)
    assert (stored.status, stored.error_code) == (Trigger.Status.RETRYING, "LEASE_EXHAUSTED")
    assert "nothing was sent" in stored.hint


def test_waiting_for_another_processs_token_stops_at_the_deadline(org, monkeypatch):
    """Another process holds the token lock and never finishes: the wait ends when no call could follow it."""
    client = SalesforceClient(org, claim=services.Claim(token="f" * 32, attempt=1, deadline=time.monotonic() + 36))
    key = client._token_key()
    from django.core.cache import cache

    cache.set(f"{key}:lock", "someone else", timeout=60)
    started = time.monotonic()
    with pytest.raises(SalesforceError) as caught:
        client.fetch_token()
    assert caught.value.code == "TOKEN_WAIT_TIMEOUT"
    assert time.monotonic() - started < 3  # 36 s left, a call needs 35: about one second of waiting at most


# --- redaction of a secret that URL-encoding changes -----------------------------------------------------------


def test_a_secret_with_url_special_characters_never_reaches_a_recorded_token_request(db):
    secret = "s3cr+t/with=and&more-characters"
    org = make_org(slug="special", secret=secret)
    with responses.RequestsMock() as mock:
        mock.post(TOKEN_URL, json=TOKEN)
        tokens.forget_local()
        SalesforceClient(org).fetch_token()

    recorded = Exchange.objects.get(kind=Exchange.Kind.TOKEN)
    stored = json.dumps([recorded.url, recorded.request_headers, recorded.request_body, recorded.response_body])
    for form in (secret, quote_plus(secret), quote_plus(secret, safe="")):
        assert form not in stored
    assert "client_secret=%5BREDACTED%5D" in recorded.request_body or "client_secret=[REDACTED]" in \
        recorded.request_body
