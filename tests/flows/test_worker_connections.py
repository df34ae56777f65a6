"""portal/celery.py: workers keep their database connections between tasks, as CONN_MAX_AGE says."""

from __future__ import annotations

from django.db import connection

from flows.models import Trigger
from flows.tasks import dispatch_trigger
from portal.celery import app


def test_the_fixup_no_longer_closes_connections_around_every_task():
    assert app.conf.CELERY_DB_REUSE_MAX >= 10**6


def test_a_task_run_eagerly_leaves_its_callers_transaction_alone(flow):
    trigger = Trigger.objects.create(flow=flow, inputs={"IndividualId": "003"}, source=Trigger.Source.API)
    assert connection.in_atomic_block  # the test's transaction, as a caller's would be

    dispatch_trigger.apply(args=(10**12,))  # no such trigger: logged and dropped, as a real task would

    assert connection.connection is not None and not connection.needs_rollback
    assert Trigger.objects.filter(pk=trigger.pk).exists()  # the same, still open transaction
