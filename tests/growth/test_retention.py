"""Retention: purge_exchanges and the daily task delete old Exchanges (and their batch links) in batches, and
nothing else."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from flows.models import Exchange, Trigger
from flows.retention import exchange_purge_older_than
from flows.retention_tasks import purge_exchanges

NOW = timezone.now()


def exchange(org, trigger=None, *, age: dt.timedelta, batch: list[Trigger] = ()) -> Exchange:
    """An exchange recorded `age` before NOW (backdated with SQL: the model refuses to be changed)."""
    row = Exchange.objects.create(org=org, trigger=trigger, kind=Exchange.Kind.INVOKE, method="POST",
                                  url="https://acme.my.salesforce.com/services/data/v65.0/actions/custom/flow/F",
                                  request_body='{"inputs": [{}]}', response_status=200, response_body="[]")
    if batch:
        row.batch_triggers.set(batch)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE flows_exchange SET created_at = %s WHERE id = %s", [NOW - age, row.pk])
    return row


def days(n: float) -> dt.timedelta:
    return dt.timedelta(days=n)


def exchange_deletes(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith('DELETE FROM "flows_exchange" ')]


@pytest.fixture
def trigger(flow) -> Trigger:
    return Trigger.objects.create(flow=flow, inputs={"IndividualId": "003A"}, status=Trigger.Status.SUCCEEDED,
                                  source=Trigger.Source.API, outputs={"Flow__InterviewStatus": "Finished"})


def test_only_older_exchanges_go_in_several_batches(org, trigger):
    old = [exchange(org, trigger, age=days(31) + dt.timedelta(minutes=i)) for i in range(7)]
    young = [exchange(org, trigger, age=days(30) - dt.timedelta(minutes=1)), exchange(org, trigger, age=days(1))]

    with CaptureQueriesContext(connection) as queries:
        deleted = exchange_purge_older_than(days=30, batch_size=3, pause_seconds=0, now=NOW)

    assert deleted == 7
    assert len(exchange_deletes(queries.captured_queries)) == 3  # 3 + 3 + 1, one statement each
    assert set(Exchange.objects.values_list("pk", flat=True)) == {e.pk for e in young}
    assert not Exchange.objects.filter(pk__in=[e.pk for e in old]).exists()
    trigger.refresh_from_db()  # the trigger keeps its outcome; only the raw exchanges went
    assert (trigger.status, trigger.outputs) == ("succeeded", {"Flow__InterviewStatus": "Finished"})


def test_each_batch_is_its_own_transaction(org, trigger):
    for i in range(4):
        exchange(org, trigger, age=days(40 + i))

    with CaptureQueriesContext(connection) as queries:
        exchange_purge_older_than(days=30, batch_size=2, pause_seconds=0, now=NOW)

    # Inside the test's transaction, each batch's atomic block shows as a savepoint: every batch's delete is
    # released before the next batch starts, so no lock outlives its batch.
    blocks, current = [], None
    for sql in (q["sql"] for q in queries.captured_queries):
        if sql.startswith("SAVEPOINT"):
            current = []
        elif sql.startswith("RELEASE SAVEPOINT"):
            blocks.append(current)
            current = None
        elif sql.startswith('DELETE FROM "flows_exchange" '):
            assert current is not None, "an exchange delete ran outside a batch's transaction"
            current.append(sql)
    assert [len(block) for block in blocks] == [1, 1, 0]  # two full batches, then one that finds nothing


def test_rows_sharing_one_timestamp_across_batches_all_go(org, trigger):
    rows = [exchange(org, trigger, age=days(45)) for _ in range(5)]  # one created_at for all five

    assert exchange_purge_older_than(days=30, batch_size=2, pause_seconds=0, now=NOW) == 5
    assert not Exchange.objects.filter(pk__in=[e.pk for e in rows]).exists()


def test_batch_links_go_with_their_exchange_and_the_triggers_stay(org, flow, trigger):
    other = Trigger.objects.create(flow=flow, inputs={"IndividualId": "003B"}, status=Trigger.Status.FAILED,
                                   source=Trigger.Source.API, error_code="UNKNOWN_EXCEPTION")
    old = exchange(org, age=days(91), batch=[trigger, other])
    young = exchange(org, age=days(2), batch=[trigger, other])
    links = Exchange.batch_triggers.through.objects

    assert exchange_purge_older_than(days=90, pause_seconds=0, now=NOW) == 1

    assert not links.filter(exchange_id=old.pk).exists()
    assert set(links.filter(exchange_id=young.pk).values_list("trigger_id", flat=True)) == {trigger.pk, other.pk}
    assert set(Trigger.objects.values_list("pk", flat=True)) == {trigger.pk, other.pk}
    assert list(other.batch_exchanges.all()) == [young]


def test_zero_days_keeps_everything(org, trigger):
    exchange(org, trigger, age=days(3650))

    with CaptureQueriesContext(connection) as queries:
        assert exchange_purge_older_than(days=0, now=NOW) == 0

    assert queries.captured_queries == []
    assert Exchange.objects.count() == 1


def test_the_daily_task_applies_the_retention_setting(org, trigger, settings):
    exchange(org, trigger, age=days(100))
    young = exchange(org, trigger, age=days(80))

    settings.FLOWGATE_EXCHANGE_RETENTION_DAYS = 0
    assert purge_exchanges() == 0
    assert Exchange.objects.count() == 2

    settings.FLOWGATE_EXCHANGE_RETENTION_DAYS = 90
    assert purge_exchanges() == 1
    assert list(Exchange.objects.all()) == [young]


def test_the_command_deletes_in_batches_and_prints_counts(org, trigger):
    old_linked = exchange(org, age=days(60), batch=[trigger])
    for i in range(4):
        exchange(org, trigger, age=days(50 + i))
    young = exchange(org, trigger, age=days(1))
    out = StringIO()

    call_command("purge_exchanges", "--older-than", "30", "--batch-size", "2", stdout=out)

    assert out.getvalue().strip() == "Deleted 5 exchanges older than 30 days and 1 batch links in 3 batches."
    assert list(Exchange.objects.all()) == [young]
    assert not Exchange.batch_triggers.through.objects.filter(exchange_id=old_linked.pk).exists()


def test_a_dry_run_counts_and_deletes_nothing(org, trigger):
    exchange(org, age=days(60), batch=[trigger])
    exchange(org, trigger, age=days(45))
    exchange(org, trigger, age=days(1))
    out = StringIO()

    with CaptureQueriesContext(connection) as queries:
        call_command("purge_exchanges", "--older-than", "30", "--dry-run", stdout=out)

    assert "Dry run: 2 exchanges older than 30 days and 1 batch links would be deleted" in out.getvalue()
    assert not [q for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert Exchange.objects.count() == 3
    assert Exchange.batch_triggers.through.objects.count() == 1


@pytest.mark.parametrize("args, message", [
    (["--older-than", "0"], "--older-than must be at least 1 day."),
    (["--older-than", "30", "--batch-size", "0"], "--batch-size must be at least 1."),
])
def test_the_command_refuses_what_would_delete_everything_or_nothing(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("purge_exchanges", *args, stdout=StringIO())


def test_the_queryset_still_refuses_to_delete_exchanges(org, trigger):
    exchange(org, trigger, age=days(100))

    with pytest.raises(TypeError, match="retention is purge_exchanges' job"):
        Exchange.objects.filter(created_at__lt=NOW).delete()
