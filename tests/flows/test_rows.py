"""update_row: the claim's and the settle's UPDATE, stored exactly as the ORM's update would store it."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from flows.models import Trigger
from flows.rows import update_row


def new_trigger(flow, **fields) -> Trigger:
    return Trigger.objects.create(flow=flow, inputs={"IndividualId": "003"}, source=Trigger.Source.API, **fields)


def stored(trigger: Trigger) -> dict:
    row = Trigger.objects.get(pk=trigger.pk)
    return {f.attname: getattr(row, f.attname) for f in Trigger._meta.concrete_fields if f.attname != "id"}


def test_stores_what_the_orms_update_stores(flow):
    now = timezone.now()
    values = dict(status=Trigger.Status.SUCCEEDED, outputs={"Flow__InterviewStatus": "Finished", "n": [1, None]},
                  error_code="", error_message="Ünïcode", next_attempt_at=None, finished_at=now, updated_at=now)
    by_orm, by_row = new_trigger(flow), new_trigger(flow)
    Trigger.objects.filter(pk=by_orm.pk).update(**values)

    assert update_row(Trigger, by_row.pk, values) == 1

    orm_values, row_values = stored(by_orm), stored(by_row)
    for own in ("created_at", "key"):  # set when each was created
        orm_values.pop(own), row_values.pop(own)
    assert row_values == orm_values
    assert row_values["outputs"] == {"Flow__InterviewStatus": "Finished", "n": [1, None]}


def test_json_none_is_sql_null(flow):
    trigger = new_trigger(flow, outputs={"a": 1})
    update_row(Trigger, trigger.pk, {"outputs": None})
    assert Trigger.objects.filter(pk=trigger.pk, outputs__isnull=True).exists()


def test_updates_only_when_every_condition_holds_and_increments(flow):
    now = timezone.now()
    trigger = new_trigger(flow, attempts=2, status=Trigger.Status.RETRYING, next_attempt_at=now)
    claim = {"status": Trigger.Status.SENDING}

    def attempt(**overrides) -> int:
        where = {"attempts": ("=", 2), "status": ("in", Trigger.WAITING), "next_attempt_at": ("<=", now),
                 **overrides}
        return update_row(Trigger, trigger.pk, claim, increment=["attempts"],
                          where=[(name, op, value) for name, (op, value) in where.items()])

    assert attempt(attempts=("=", 1)) == 0
    assert attempt(status=("in", (Trigger.Status.QUEUED,))) == 0
    assert attempt(next_attempt_at=("<=", now - dt.timedelta(seconds=1))) == 0
    assert Trigger.objects.get(pk=trigger.pk).status == Trigger.Status.RETRYING

    assert attempt() == 1
    assert attempt() == 0  # taken: the second caller gets nothing
    row = Trigger.objects.get(pk=trigger.pk)
    assert (row.status, row.attempts) == (Trigger.Status.SENDING, 3)


def test_another_row_is_untouched(flow):
    one, other = new_trigger(flow), new_trigger(flow)
    update_row(Trigger, one.pk, {"error_code": "X"})
    assert Trigger.objects.get(pk=other.pk).error_code == ""
