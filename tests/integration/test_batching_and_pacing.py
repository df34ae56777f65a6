"""Micro-batching and the per-org call cap, through the real worker, Redis and the emulator."""

from __future__ import annotations

import pytest
from django.db import transaction

from flows import services
from flows.models import Exchange, Trigger

from .conftest import wait_final

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def fire_many(flow, individuals: list[str]) -> list[Trigger]:
    with transaction.atomic():
        return [services.trigger_create(flow=flow, inputs={"IndividualId": i}, source=Trigger.Source.API)
                for i in individuals]


@pytest.fixture
def batched_flow(emu_flow):
    emu_flow.batch_enabled = True
    emu_flow.batch_window_ms = 300
    emu_flow.batch_max_inputs = 200
    emu_flow.save()
    return emu_flow


def test_triggers_queued_within_the_window_go_in_one_call(worker, emulator, batched_flow):
    triggers = [wait_final(t) for t in fire_many(batched_flow, [f"003B{n:04}" for n in range(60)])]

    assert {t.status for t in triggers} == {Trigger.Status.SUCCEEDED}
    state = emulator.emulator.snapshot()
    assert state["invoke_calls"] == 1 and state["invoked_inputs"] == 60
    exchange = Exchange.objects.get(kind=Exchange.Kind.INVOKE)
    assert exchange.batch_triggers.count() == 60
    assert all(t.batch_exchanges.get() == exchange for t in triggers[:3])
    assert len({t.outputs["Flow__InterviewGuid"] for t in triggers}) == 60  # each its own interview


def test_each_element_settles_its_own_trigger(worker, emulator, batched_flow):
    triggers = [wait_final(t) for t in fire_many(batched_flow, ["003OK1", "FAIL-1", "003OK2"])]

    assert [t.status for t in triggers] == ["succeeded", "failed", "succeeded"]
    assert triggers[1].error_message == "An error occurred when executing a flow interview."
    assert triggers[1].attempts == 1
    assert emulator.emulator.snapshot()["invoke_calls"] == 1


def test_a_transient_failure_of_the_call_retries_the_batch(worker, emulator, batched_flow):
    emulator.emulator.configure(fail_next=2)  # the token request, then the first invoke

    triggers = [wait_final(t) for t in fire_many(batched_flow, ["003R1", "003R2", "003R3"])]

    assert {t.status for t in triggers} == {Trigger.Status.SUCCEEDED}
    assert emulator.emulator.snapshot()["by_individual"] == {"003R1": 1, "003R2": 1, "003R3": 1}


def test_calls_in_flight_never_exceed_the_orgs_cap(worker, emulator, emu_flow):
    emu_flow.org.max_concurrent_calls = 2
    emu_flow.org.save()
    emulator.emulator.configure(latency_ms=150)

    triggers = [wait_final(t, seconds=60) for t in fire_many(emu_flow, [f"003C{n}" for n in range(12)])]

    assert {t.status for t in triggers} == {Trigger.Status.SUCCEEDED}
    assert {t.attempts for t in triggers} == {1}  # waiting for a slot is not an attempt
    assert emulator.emulator.snapshot()["max_in_flight"] == 2
