import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def schedule_sweep(sender: Celery, **kwargs) -> None:
    from django.conf import settings

    sender.add_periodic_task(settings.FLOWGATE_SWEEP_INTERVAL, sender.signature("flows.sweep_triggers"))
    sender.add_periodic_task(crontab(hour=3, minute=17), sender.signature("flows.purge_exchanges"),
                             name="purge exchanges")
