"""Retention: the one sanctioned way to delete Exchanges.

Exchanges are immutable through the app (their queryset refuses update() and delete()), because they are the
audit record of what was sent to Salesforce and what came back. Their volume still has to be bounded: this
module deletes the ones older than a number of days, and nothing else may.

Deleting millions of rows in one statement would hold its locks and its transaction (and bloat the WAL and the
replicas' lag) for minutes. So rows go in batches of ids, each batch its own short transaction, with a pause
between batches that lets vacuum, replication and the live traffic keep up. Triggers are never touched: an
exchange's trigger keeps its status, error and outputs; only the raw request and response go.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import router, transaction
from django.utils import timezone

from .models import Exchange, OrgUsageSample

DEFAULT_BATCH_SIZE = 5000
# Long enough for autovacuum and replicas to breathe between batches, short enough that a first purge of
# millions of rows still ends within minutes (400 batches of 5,000 rows: 20 s of pauses).
DEFAULT_PAUSE_SECONDS = 0.05

BatchLinks = Exchange.batch_triggers.through  # a micro-batch's exchange ↔ each of its triggers


@dataclass(frozen=True)
class PurgeCounts:
    exchanges: int
    links: int  # rows of Exchange.batch_triggers' through table


def exchange_retention_cutoff(*, days: int, now: dt.datetime | None = None) -> dt.datetime | None:
    """Exchanges created before this instant are purgeable; None when `days` is 0 or less (keep forever)."""
    if days <= 0:
        return None
    return (now or timezone.now()) - dt.timedelta(days=days)


def exchanges_purgeable_count(*, days: int, now: dt.datetime | None = None) -> PurgeCounts:
    """What a purge with these settings would delete now (the dry run); nothing is changed."""
    cutoff = exchange_retention_cutoff(days=days, now=now)
    if cutoff is None:
        return PurgeCounts(exchanges=0, links=0)
    old = Exchange.objects.filter(created_at__lt=cutoff)
    return PurgeCounts(exchanges=old.count(),
                       links=BatchLinks.objects.filter(exchange__created_at__lt=cutoff).count())


def exchange_purge_older_than(
    *,
    days: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    pause_seconds: float = DEFAULT_PAUSE_SECONDS,
    now: dt.datetime | None = None,
    on_batch: Callable[[PurgeCounts], None] | None = None,
) -> int:
    """Deletes the Exchanges created more than `days` days ago, and their batch links, `batch_size` ids at a
    time; returns how many Exchanges went. `days` of 0 or less keeps everything.

    `on_batch` is called after each committed batch with that batch's counts (progress for the command line).
    Safe to run twice at once: a second purger finds the rows gone and deletes nothing.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    cutoff = exchange_retention_cutoff(days=days, now=now)
    if cutoff is None:
        return 0
    db = router.db_for_write(Exchange)
    # Walk forward through the created_at index instead of always restarting at its oldest end: the dead
    # index entries of the batches already deleted are then skipped without being read again.
    floor: dt.datetime | None = None
    total = 0
    while True:
        with transaction.atomic(using=db):
            old = Exchange.objects.using(db).filter(created_at__lt=cutoff)
            if floor is not None:
                old = old.filter(created_at__gte=floor)
            batch = list(old.order_by("created_at").values_list("pk", "created_at")[:batch_size])
            if not batch:
                return total
            ids = [pk for pk, _ in batch]
            # Links first: the through table's foreign key to the exchange would otherwise refuse the delete.
            links = BatchLinks.objects.using(db).filter(exchange_id__in=ids)._raw_delete(db)
            # _raw_delete: one DELETE ... WHERE id IN (...), no collector, no signals, and it bypasses
            # ExchangeQuerySet.delete(), which refuses on purpose. Nothing else references an Exchange.
            deleted = Exchange.objects.using(db).filter(pk__in=ids)._raw_delete(db)
        total += deleted
        floor = batch[-1][1]
        if on_batch is not None:
            on_batch(PurgeCounts(exchanges=deleted, links=links))
        if len(batch) < batch_size:
            return total
        if pause_seconds > 0:
            time.sleep(pause_seconds)


# The dashboard draws 7 days of API usage; one day more so its first hour is never cut short by the purge.
USAGE_SAMPLE_RETENTION = dt.timedelta(days=8)


def org_usage_samples_purge(*, now: dt.datetime | None = None) -> int:
    """Deletes the API usage samples older than 8 days; returns how many went. At most one sample per org per
    5 minutes (about 2,300 rows per org in 8 days): one DELETE, no batches needed."""
    deleted, _ = OrgUsageSample.objects.filter(seen_at__lt=(now or timezone.now()) - USAGE_SAMPLE_RETENTION).delete()
    return deleted
