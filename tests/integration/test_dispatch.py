"""Triggers fired through the service, dispatched by a real worker over a Redis broker, against the emulator."""

from __future__ import annotations

import logging
import threading

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from flows import services
from flows.models import Exchange, Trigger
from flows.salesforce import SalesforceClient

from .conftest import wait_final

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def fire(flow, **inputs) -> Trigger:
    inputs.setdefault("IndividualId", "003Ho00002AlRM8IAN")
    return services.trigger_create(flow=flow, inputs=inputs, source=Trigger.Source.API, actor_label="tests")


def test_a_fired_trigger_succeeds_through_the_worker(worker, emulator, emu_flow):
    trigger = wait_final(fire(emu_flow, EmailAddress="ada@example.com"))

    assert trigger.status == Trigger.Status.SUCCEEDED
    assert trigger.attempts == 1
    assert trigger.outputs["Flow__InterviewStatus"] == "Finished"
    assert emulator.emulator.snapshot()["by_individual"] == {"003Ho00002AlRM8IAN": 1}
    invoke = trigger.exchanges.get()
    assert (invoke.kind, invoke.response_status) == (Exchange.Kind.INVOKE, 200)
    assert '"EmailAddress": "ada@example.com"' in invoke.request_body


def test_triggers_share_one_token(worker, emulator, emu_flow):
    first, second = fire(emu_flow), fire(emu_flow, IndividualId="003B")

    assert wait_final(first).status == wait_final(second).status == Trigger.Status.SUCCEEDED
    assert emulator.emulator.snapshot()["token_requests"] == 1
    assert Exchange.objects.filter(kind=Exchange.Kind.TOKEN).count() == 1


def test_an_expired_token_is_renewed_once(worker, emulator, emu_flow):
    assert wait_final(fire(emu_flow)).status == Trigger.Status.SUCCEEDED
    emulator.emulator.configure(expire_tokens=True)

    trigger = wait_final(fire(emu_flow, IndividualId="003AFTER"))

    assert trigger.status == Trigger.Status.SUCCEEDED
    assert trigger.attempts == 1
    assert emulator.emulator.snapshot()["token_requests"] == 2
    statuses = list(trigger.exchanges.order_by("id").values_list("response_status", flat=True))
    assert statuses == [401, 200]


def test_a_burst_after_expiry_makes_one_token_request(emulator, emu_org):
    """Ten processes' worth of callers at once: one token request; the rest wait for its token."""
    emulator.emulator.configure(latency_ms=300)
    tokens, errors = [], []

    def fetch():
        try:
            tokens.append(SalesforceClient(emu_org).fetch_token())
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=fetch) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len({t.access_token for t in tokens}) == 1
    assert emulator.emulator.snapshot()["token_requests"] == 1


def test_a_503_burst_is_retried_to_success(worker, emulator, emu_flow):
    assert wait_final(fire(emu_flow)).status == Trigger.Status.SUCCEEDED  # token in hand
    emulator.emulator.configure(fail_next=2)

    trigger = wait_final(fire(emu_flow, IndividualId="003RETRY"))

    assert trigger.status == Trigger.Status.SUCCEEDED
    assert trigger.attempts == 3
    assert list(trigger.exchanges.order_by("id").values_list("response_status", flat=True)) == [503, 503, 200]


def test_retries_stop_after_the_schedule(worker, emulator, emu_flow):
    emulator.emulator.configure(fail_next=100, fail_html=True)

    trigger = wait_final(fire(emu_flow))

    assert trigger.status == Trigger.Status.FAILED
    assert trigger.attempts == len(settings.FLOWGATE_RETRY_DELAYS) + 1
    assert trigger.error_code == "HTTP_503"
    assert trigger.error_message == "Service Unavailable"


def test_a_per_input_failure_fails_without_retry(worker, emulator, emu_flow):
    trigger = wait_final(fire(emu_flow, IndividualId="FAIL-0001"))

    assert trigger.status == Trigger.Status.FAILED
    assert trigger.attempts == 1
    assert trigger.error_code == "UNKNOWN_EXCEPTION"
    assert trigger.error_message == "An error occurred when executing a flow interview."
    assert emulator.emulator.snapshot()["invoke_calls"] == 1


def test_a_token_error_fails_with_the_hint(worker, emulator, emu_flow):
    emulator.emulator.configure(token_error="no_client_credentials_user")

    trigger = wait_final(fire(emu_flow))

    assert trigger.status == Trigger.Status.FAILED
    assert trigger.attempts == 1
    assert trigger.error_code == "invalid_grant"
    assert "enable the Client Credentials Flow" in trigger.hint


def test_trigger_flow_waits_for_the_worker(worker, emulator, emu_flow, capsys):
    with pytest.raises(SystemExit) as exit_:
        call_command("trigger_flow", "emu", "On_Demand_Flow", "IndividualId=003CLI", "--wait", "15")

    assert exit_.value.code == 0
    assert '"status": "succeeded"' in capsys.readouterr().out


def test_no_secret_or_token_is_stored_or_logged(worker, emulator, emu_flow, caplog):
    caplog.set_level(logging.DEBUG)
    wait_final(fire(emu_flow))
    wait_final(fire(emu_flow, IndividualId="FAIL-1"))
    emulator.emulator.configure(expire_tokens=True, fail_next=1)
    wait_final(fire(emu_flow, IndividualId="003C"))
    wait_final(fire(emu_flow, IndividualId="003D"))

    secrets = [emulator.emulator.consumer_key, emulator.emulator.consumer_secret, *emulator.emulator.issued_tokens()]
    assert len(secrets) >= 4

    dump = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT CAST(t AS text) FROM "{table}" t')
            dump.extend(row[0] for row in cursor.fetchall())
    dump_text = "\n".join(dump)
    assert "flows_exchange" in connection.introspection.table_names() and Exchange.objects.count() >= 5

    broker_and_cache = []
    for url in (settings.CELERY_BROKER_URL, settings.CACHES["default"]["LOCATION"]):
        client = redis.Redis.from_url(url)
        for key in client.scan_iter():
            kind = client.type(key)
            if kind == b"string":
                broker_and_cache.append(client.get(key) or b"")
            elif kind == b"list":
                broker_and_cache.extend(client.lrange(key, 0, -1))
            elif kind == b"hash":
                broker_and_cache.extend(client.hvals(key))
    stored = b"\n".join(broker_and_cache).decode("utf-8", errors="replace")

    for secret in secrets:
        assert secret not in dump_text
        assert secret not in caplog.text
        assert secret not in stored
