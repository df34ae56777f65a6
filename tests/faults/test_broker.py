"""The broker down (stopped, then frozen) while the API accepts triggers: the API keeps answering 202 at once, the
row is the outbox (enqueued_at empty), and when the broker is back the sweep enqueues them: nothing is lost."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from flows.models import Trigger

from .conftest import ApiClient, all_final, seed, statuses, wait_until

pytestmark = [pytest.mark.faults]

# With the broker stopped a publish is refused at once; frozen, it gives up after the socket timeouts in
# portal/settings.py (about 6 s for the first, 2 s after). Without them the request would hang for good.
STOPPED_LATENCY_LIMIT = 3.0
FROZEN_LATENCY_LIMIT = 15.0


def fire_all(stack, key: str, individuals: list[str], clients: int = 10) -> list[tuple[int, float, int | None]]:
    """(status, seconds, trigger id) per individual, fired by `clients` concurrent API clients."""
    per_client = [ApiClient(stack.api_url, key) for _ in range(clients)]

    def fire(index: int) -> tuple[int, float, int | None]:
        started = time.monotonic()
        response = per_client[index % clients].fire(individuals[index], timeout=60)
        seconds = time.monotonic() - started
        return response.status_code, seconds, response.json().get("id") if response.status_code < 500 else None

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(fire, range(len(individuals))))


def accepted_ids(answers) -> list[int]:
    assert [status for status, _, _ in answers] == [202] * len(answers), answers
    return [trigger_id for _, _, trigger_id in answers]


def test_broker_down_the_api_keeps_accepting_and_nothing_is_lost(make_stack, broker, figures):
    stack = make_stack()
    emulator = stack.emulator()
    flow, key = seed(emulator.url)
    stack.api()
    stack.beat()
    stack.worker()
    warm_up = ApiClient(stack.api_url, key).fire("BRK-WARM").json()["id"]
    wait_until(lambda: all_final([warm_up]), timeout=30, what="the warm-up trigger")

    # 1. The broker process is gone (and with it every message it held: no persistence).
    broker.stop()
    down = fire_all(stack, key, [f"BRK-DOWN-{n:03}" for n in range(40)])
    down_ids = accepted_ids(down)
    rows = Trigger.objects.filter(pk__in=down_ids)
    assert set(rows.values_list("status", flat=True)) == {Trigger.Status.QUEUED}
    assert not rows.filter(enqueued_at__isnull=False).exists()  # the outbox: the sweep will send them
    time.sleep(3)  # longer than a sweep interval and its grace: nothing moves while the broker is away
    assert statuses(down_ids) == {Trigger.Status.QUEUED: len(down_ids)}

    broker.start()
    back_at = time.monotonic()
    wait_until(lambda: all_final(down_ids), timeout=90, interval=0.5, what="the triggers accepted while down")
    recovered_in = time.monotonic() - back_at

    # 2. The broker frozen (SIGSTOP: connections open, no answer), the hang kombu's defaults would turn into.
    broker.service.signal(signal.SIGSTOP)
    try:
        frozen = fire_all(stack, key, [f"BRK-FROZEN-{n}" for n in range(6)], clients=6)
    finally:
        broker.service.signal(signal.SIGCONT)
    frozen_ids = accepted_ids(frozen)
    thawed_at = time.monotonic()
    wait_until(lambda: all_final(frozen_ids), timeout=90, interval=0.5, what="the triggers accepted while frozen")

    by_individual = emulator.state()["by_individual"]
    figures.update(
        accepted_while_stopped=len(down_ids), slowest_202_while_stopped_s=round(max(s for _, s, _ in down), 2),
        seconds_broker_back_to_all_succeeded=round(recovered_in, 1),
        accepted_while_frozen=len(frozen_ids), slowest_202_while_frozen_s=round(max(s for _, s, _ in frozen), 2),
        seconds_thaw_to_all_succeeded=round(time.monotonic() - thawed_at, 1),
        final=dict(statuses(down_ids + frozen_ids)), sweeps=dict(stack.sweep_counts()),
    )
    print(f"\nbroker figures: {figures}")

    assert max(seconds for _, seconds, _ in down) < STOPPED_LATENCY_LIMIT
    assert max(seconds for _, seconds, _ in frozen) < FROZEN_LATENCY_LIMIT
    assert statuses(down_ids + frozen_ids) == {Trigger.Status.SUCCEEDED: len(down_ids) + len(frozen_ids)}
    # Sent once each: a publish that timed out but reached the broker after all, and the sweep's message for the
    # same trigger, meet the claim, which lets only one of them send.
    sent = {individual: count for individual, count in by_individual.items() if individual.startswith("BRK-")}
    assert sent == {individual: 1 for individual in sent} and len(sent) == 1 + len(down_ids) + len(frozen_ids)
