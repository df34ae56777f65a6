"""The sweep against a deep queue: a message still waiting in the broker is not lost, and must not be sent again.

Once, trigger_sweep took any due trigger whose message had not reached a worker within FLOWGATE_SWEEP_GRACE as
lost and enqueued it again every sweep: with the queue's wait above the grace, the backlog snowballed (12,752
tasks for ~3,000 triggers). The sweep now re-sends on grace only while the dispatch queue is empty.
"""

from __future__ import annotations

import time

import pytest

from flows.models import Trigger

from .conftest import ApiClient, seed, statuses

pytestmark = [pytest.mark.faults]

WAITING = 300


def test_a_deep_queue_is_not_multiplied_by_the_sweep(make_stack, broker, figures):
    stack = make_stack()  # grace 3 s, a sweep every second
    emulator = stack.emulator()
    flow, key = seed(emulator.url)
    stack.api()
    stack.beat()
    stack.worker("sweeper", concurrency=2, queues="flowgate.sweep")  # sweeps run, dispatches wait in the queue

    ApiClient(stack.api_url, key).fire_batch([f"DEEP{n:03}" for n in range(WAITING)])
    assert broker.queue_length() == WAITING
    time.sleep(stack.number("FLOWGATE_SWEEP_GRACE") * 3 + 2)  # three grace periods, a sweep every second

    figures.update(waiting=WAITING, messages_in_queue=broker.queue_length(), sweeps=dict(stack.sweep_counts()))
    print(f"\ndeep queue figures: {figures}")
    assert statuses() == {Trigger.Status.QUEUED: WAITING}
    # Every waiting trigger still has its message in the queue: a sweep that sends them again only adds load.
    assert broker.queue_length() <= WAITING + 10
