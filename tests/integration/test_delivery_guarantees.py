"""Sent once, or someone knows, through real worker threads, the Redis broker and the emulator over loopback:
a stale worker's late answer is fenced off, an at-most-once flow ends `unknown` instead of sending twice, and
both REQUEST_LIMIT_EXCEEDED behave as their messages say."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from flows import services
from flows.models import Exchange, Flow, Org, Trigger

from .conftest import wait_final

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def fire(flow: Flow, individual: str) -> Trigger:
    return services.trigger_create(flow=flow, inputs={"IndividualId": individual}, source=Trigger.Source.API,
                                   actor_label="tests")


def wait_for(predicate, *, seconds: float = 20, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {seconds} s for {what}")
        time.sleep(0.02)


def test_a_stale_workers_late_answer_never_overwrites_the_result_nor_sends_a_third_time(worker, emulator, emu_flow,
                                                                                      settings):
    """The issue's reproduction: worker A's call is in flight when its lease runs out; the sweep hands the trigger
    to worker B, which sends it and succeeds; then A's call times out. Before the fence, A wrote `retrying TIMEOUT`
    over `succeeded` and the retry sent it a third time."""
    settings.FLOWGATE_HTTP_READ_TIMEOUT = 2
    settings.FLOWGATE_RETRY_DELAYS = [0.2, 0.4]
    emulator.emulator.configure(slow_next=1, slow_ms=5000)  # A's call: the flow runs, the answer never comes in time
    trigger = fire(emu_flow, "003STALE")

    wait_for(lambda: emulator.emulator.snapshot()["invoke_calls"] == 1, what="worker A's call to be in flight")
    # A's lease runs out while its call is in flight (a frozen process, a stalled database: anything that holds
    # a live worker past its lease), and the sweep takes the trigger back.
    Trigger.objects.filter(pk=trigger.pk).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    assert services.trigger_sweep()["recovered"] == 1

    trigger = wait_final(trigger)  # worker B's attempt
    assert (trigger.status, trigger.attempts) == (Trigger.Status.SUCCEEDED, 2)
    wait_for(lambda: Exchange.objects.filter(trigger=trigger, kind=Exchange.Kind.INVOKE).count() == 2,
             what="worker A's timeout to be recorded")
    time.sleep(1)  # time for a retry that must not come

    trigger.refresh_from_db()
    assert (trigger.status, trigger.attempts, trigger.error_code) == (Trigger.Status.SUCCEEDED, 2, "")
    assert emulator.emulator.snapshot()["invoke_calls"] == 2  # exactly two calls: A's and B's
    assert emulator.emulator.snapshot()["by_individual"] == {"003STALE": 2}
    late, in_time = (Exchange.objects.filter(trigger=trigger, kind=Exchange.Kind.INVOKE)
                     .order_by("-late").values_list("attempt", "late", "classification", "response_status"))
    assert late == (1, True, Exchange.Classification.UNKNOWN, None)
    assert in_time == (2, False, Exchange.Classification.RAN, 200)


def test_an_at_most_once_flow_ends_unknown_and_is_not_sent_again(worker, emulator, emu_flow, settings, alice):
    settings.FLOWGATE_HTTP_READ_TIMEOUT = 1
    settings.FLOWGATE_RETRY_DELAYS = [0.2, 0.4]
    emu_flow.delivery = Flow.Delivery.AT_MOST_ONCE
    emu_flow.save()
    emulator.emulator.configure(slow_next=1, slow_ms=2500)

    trigger = wait_final(fire(emu_flow, "003ONCE"), seconds=30)

    assert (trigger.status, trigger.attempts, trigger.error_code) == (Trigger.Status.UNKNOWN, 1, "TIMEOUT")
    assert "Mark as delivered" in trigger.hint
    time.sleep(3)  # the slow answer has come and gone; no retry
    assert emulator.emulator.snapshot()["by_individual"] == {"003ONCE": 1}  # the flow ran once, and only once
    assert Trigger.objects.get(pk=trigger.pk).status == Trigger.Status.UNKNOWN

    services.trigger_mark_delivered(trigger=trigger, actor=alice)
    trigger.refresh_from_db()
    assert (trigger.status, trigger.delivered_by) == (Trigger.Status.SUCCEEDED, alice)


def test_a_reset_mid_response_on_an_at_most_once_flow_ends_unknown(worker, emulator, emu_flow):
    emu_flow.delivery = Flow.Delivery.AT_MOST_ONCE
    emu_flow.save()
    emulator.emulator.configure(drop_next=1)

    trigger = wait_final(fire(emu_flow, "003DROP"))

    assert (trigger.status, trigger.error_code) == (Trigger.Status.UNKNOWN, "CONNECTION_RESET")
    assert emulator.emulator.snapshot()["by_individual"] == {"003DROP": 1}


def test_the_daily_limit_pauses_the_org_and_spends_no_retry(worker, emulator, emu_flow, settings):
    settings.FLOWGATE_LIMIT_PAUSE_SECONDS = 1
    emulator.emulator.configure(limit_next=1)

    trigger = fire(emu_flow, "003DAILY")
    wait_for(lambda: Org.objects.get(pk=emu_flow.org_id).paused_until is not None, what="the org to be paused")
    assert Trigger.objects.get(pk=trigger.pk).attempts == 0
    time.sleep(1.2)  # the pause ends; the sweep (beat in production) sends it on
    services.trigger_sweep()

    trigger = wait_final(trigger)
    assert (trigger.status, trigger.attempts) == (Trigger.Status.SUCCEEDED, 1)
    assert emulator.emulator.snapshot()["by_individual"] == {"003DAILY": 1}


def test_too_many_long_requests_back_off_for_seconds_without_a_pause(worker, emulator, emu_flow, settings):
    settings.FLOWGATE_CONCURRENT_LIMIT_BACKOFF = 0.3
    emulator.emulator.configure(long_txn_limit_next=2)

    trigger = wait_final(fire(emu_flow, "003LONG"))

    assert (trigger.status, trigger.attempts) == (Trigger.Status.SUCCEEDED, 1)  # neither refusal used a retry
    assert Org.objects.get(pk=emu_flow.org_id).paused_until is None
    statuses = list(Exchange.objects.filter(trigger=trigger, kind=Exchange.Kind.INVOKE).order_by("id")
                    .values_list("response_status", flat=True))
    assert statuses == [403, 403, 200]
