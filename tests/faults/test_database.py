"""PostgreSQL restarted under load (an instance of our own): the API answers 503 with a JSON body and Retry-After
while it is away, and recovers by itself, without restarting the portal; nothing accepted is lost."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest
import requests

from .conftest import ApiClient, seed_elsewhere, wait_until

pytestmark = [pytest.mark.faults]

CLIENTS = 8
DOWN_SECONDS = 6.0


@dataclass
class Log:
    """(monotonic time, path kind, status, body, Retry-After) of every answer; failures to get one."""

    answers: list[tuple[float, str, int, str, str | None]] = field(default_factory=list)
    no_answer: list[str] = field(default_factory=list)
    accepted: dict[str, int] = field(default_factory=dict)  # IndividualId -> trigger id (202, or 200 on a retry)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, kind: str, response: requests.Response) -> None:
        with self.lock:
            self.answers.append((time.monotonic(), kind, response.status_code, response.text[:300],
                                 response.headers.get("Retry-After")))


def api_client(number: int, api_url: str, key: str, stop: threading.Event, log: Log) -> None:
    """Fires triggers one after the other; a 503 is retried with the same Idempotency-Key, as a client should."""
    client = ApiClient(api_url, key)
    sent = 0
    while not stop.is_set():
        individual = f"PG{number}-{sent:05}"
        sent += 1
        while True:
            try:
                response = client.fire(individual, idempotency_key=individual, timeout=30)
            except requests.RequestException as error:
                with log.lock:
                    log.no_answer.append(f"{type(error).__name__}: {error}"[:300])
                time.sleep(0.2)
                continue
            log.note("api", response)
            if response.status_code in (200, 202):
                with log.lock:
                    log.accepted[individual] = response.json()["id"]
                break
            if response.status_code != 503 or stop.is_set():
                break
            time.sleep(0.2)


def webhook_client(api_url: str, stop: threading.Event, log: Log) -> None:
    """An unknown webhook: 404 when the database answers (it looks the slug up), 503 when it does not."""
    with requests.Session() as session:
        while not stop.is_set():
            try:
                log.note("hooks", session.post(f"{api_url}/hooks/shopify/no-such-shop", data=b"{}", timeout=30,
                                               headers={"Content-Type": "application/json"}))
            except requests.RequestException as error:
                with log.lock:
                    log.no_answer.append(f"hooks: {type(error).__name__}: {error}"[:300])
            time.sleep(0.1)


def test_postgresql_restarted_under_load_503_then_recovers_by_itself(throwaway_postgres, make_stack, figures):
    # make_stack after throwaway_postgres: its processes are killed before the database they use.
    postgres = throwaway_postgres
    stack = make_stack(database=postgres.url)
    emulator = stack.emulator()
    key = seed_elsewhere(postgres.url, emulator.url)
    stack.api(workers=2, threads=8)
    stack.beat()
    stack.worker()
    api_pids = stack.api_worker_pids()

    log, stop = Log(), threading.Event()
    threads = [threading.Thread(target=api_client, args=(n, stack.api_url, key, stop, log), daemon=True)
               for n in range(CLIENTS)]
    threads.append(threading.Thread(target=webhook_client, args=(stack.api_url, stop, log), daemon=True))
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(log.accepted) >= 20, timeout=60, what="load before the restart")
        stopping_at = time.monotonic()
        postgres.stop()
        down_at = time.monotonic()
        time.sleep(DOWN_SECONDS)
        postgres.start()
        up_at = time.monotonic()
        accepted_before_up = len(log.accepted)
        wait_until(lambda: len(log.accepted) >= accepted_before_up + 20, timeout=60,
                   what="the API to accept triggers again")
        time.sleep(2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=40)
    assert not any(thread.is_alive() for thread in threads), "a client hung"

    # Every accepted trigger ends, the workers having come back by themselves too.
    def unfinished() -> int:
        return postgres.sql("SELECT count(*) FROM flows_trigger WHERE status NOT IN ('succeeded', 'failed')")[0][0]

    wait_until(lambda: unfinished() == 0, timeout=stack.lease_seconds() + 60, interval=0.5,
               what="every accepted trigger to end")
    rows = {individual: (pk, status, attempts) for pk, individual, status, attempts in postgres.sql(
        "SELECT id, inputs->>'IndividualId', status, attempts FROM flows_trigger")}
    by_individual = emulator.state()["by_individual"]

    during = [a for a in log.answers if stopping_at <= a[0] <= up_at]
    api_503 = [a for a in log.answers if a[1] == "api" and a[2] == 503]
    hooks_503 = [a for a in log.answers if a[1] == "hooks" and a[2] == 503]
    first_accepted_after = min(t for t, kind, status, _, _ in log.answers if kind == "api" and t > up_at
                               and status in (200, 202))
    after = [a for a in log.answers if a[0] > first_accepted_after]
    duplicated = {i: c for i, c in by_individual.items() if c > 1}
    figures.update(
        down_seconds=round(up_at - down_at, 1), answers=len(log.answers), answers_while_down=len(during),
        api_503=len(api_503), hooks_503=len(hooks_503),
        statuses={str(s): sum(1 for a in log.answers if a[2] == s) for s in sorted({a[2] for a in log.answers})},
        no_answer=len(log.no_answer), seconds_up_to_first_202=round(first_accepted_after - up_at, 2),
        accepted=len(log.accepted), triggers=len(rows), final={s: sum(1 for r in rows.values() if r[1] == s)
                                                              for s in {r[1] for r in rows.values()}},
        duplicates=len(duplicated), gunicorn_workers_restarted=len(api_pids - stack.api_worker_pids()),
    )
    print(f"\nPostgreSQL restart figures: {figures}")

    assert not log.no_answer, log.no_answer[:5]  # the portal kept answering throughout
    assert {a[2] for a in log.answers} <= {200, 202, 404, 503}  # not one 500
    assert api_503 and hooks_503
    for _, kind, _, body, retry_after in api_503 + hooks_503:
        assert body.startswith('{"error": "The database is unavailable') and retry_after == "5", body
    # Recovered by itself: the same gunicorn processes answer again within seconds of PostgreSQL's return.
    assert stack.api_service.alive() and stack.api_worker_pids() == api_pids
    assert first_accepted_after - up_at < 10
    assert all(a[2] in (200, 202, 404) for a in after), [a for a in after if a[2] not in (200, 202, 404)][:5]
    # Nothing accepted is lost, and a retried request made no second trigger (same Idempotency-Key).
    assert set(rows) == set(log.accepted)
    assert {individual: rows[individual][0] for individual in log.accepted} == log.accepted
    assert {status for _, status, _ in rows.values()} == {"succeeded"}
    assert all(by_individual.get(individual, 0) >= 1 for individual in rows)
    # A duplicate needs Salesforce to have taken a call whose result could not be recorded (the database was
    # gone): such a trigger was taken back after its lease and sent again.
    assert all(rows[individual][2] >= 2 for individual in duplicated)
