"""The daily retention run (Celery beat schedules it): the setting in, a service call, nothing else."""

import logging

from celery import shared_task
from django.conf import settings

from .retention import exchange_purge_older_than, org_usage_samples_purge

logger = logging.getLogger(__name__)


@shared_task(name="flows.purge_exchanges", ignore_result=True)
def purge_exchanges() -> int:
    # The dashboard's API usage samples ride on this daily run: 8 days, whatever the exchanges' setting.
    org_usage_samples_purge()
    days = settings.FLOWGATE_EXCHANGE_RETENTION_DAYS
    deleted = exchange_purge_older_than(days=days)
    if days > 0:
        logger.info("Retention: deleted %s exchanges older than %s days.", deleted, days)
    return deleted
