import os

from celery import Celery
from celery.schedules import crontab
from celery.signals import task_postrun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Celery's Django fixup closes every database connection before and after each task unless CELERY_DB_REUSE_MAX
# is set, whatever CONN_MAX_AGE says: each task then opened a PostgreSQL connection of its own, a backend forked
# for a few queries (9 ms of CPU per trigger, half the machine at full speed; bench/results/latest.md). The
# fixup's closing is turned off here, and as Django does after a request, a connection is closed after a task
# only when it is older than CONN_MAX_AGE, broken, or left unusable (so DATABASE_CONN_MAX_AGE=0 still closes it
# after every task).
app.conf.CELERY_DB_REUSE_MAX = 10**9


@task_postrun.connect
def close_old_connections(task=None, **kwargs: object) -> None:
    # Not after a task run eagerly, in its caller's thread: that connection is the caller's, maybe mid-transaction.
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections as django_close_old_connections

    django_close_old_connections()


@app.on_after_finalize.connect
def schedule_sweep(sender: Celery, **kwargs) -> None:
    from django.conf import settings

    sender.add_periodic_task(settings.FLOWGATE_SWEEP_INTERVAL, sender.signature("flows.sweep_triggers"))
    sender.add_periodic_task(crontab(hour=3, minute=17), sender.signature("flows.purge_exchanges"),
                             name="purge exchanges")
