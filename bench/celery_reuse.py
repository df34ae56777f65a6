"""Flowgate's Celery app with database connections reused across tasks: a proposed fix, measured side by side.

    celery -A bench.celery_reuse worker ...     (bench/throughput.py runs it for its "proposed" rows)

Celery's Django fixup closes every database connection before and after each task unless CELERY_DB_REUSE_MAX
is set, whatever DATABASE_CONN_MAX_AGE says: each task then opens a new PostgreSQL connection (a backend
process forked for a few queries). Here the fixup's closing is turned off and, as Django does after a request,
connections are closed after a task only when they are too old, broken or left in a failed state
(close_old_connections honours CONN_MAX_AGE, so DATABASE_CONN_MAX_AGE=0 still closes them after every task).

The same few lines belong in portal/celery.py once adopted; this module only lets the benchmark compare.
"""

from celery.signals import task_postrun

from portal.celery import app

# The fixup closes connections only every 2 x this many tasks; Django's own rule below decides instead.
app.conf.CELERY_DB_REUSE_MAX = 10**9


@task_postrun.connect
def close_old_connections(**kwargs: object) -> None:
    from django.db import close_old_connections as django_close_old_connections

    django_close_old_connections()


__all__ = ["app"]
