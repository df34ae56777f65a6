"""The daily retention run (Celery beat schedules it): the setting in, a service call, nothing else."""

import logging

from celery import shared_task
from django.conf import settings

from .retention import exchange_purge_older_than

logger = logging.getLogger(__name__)


@shared_task(name="flows.purge_exchanges", ignore_result=True)
def purge_exchanges() -> int:
    days = settings.FLOWGATE_EXCHANGE_RETENTION_DAYS
    deleted = exchange_purge_older_than(days=days)
    if days > 0:
        logger.info("Retention: deleted %s exchanges older than %s days.", deleted, days)
    return deleted
