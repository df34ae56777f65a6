"""Celery entry points: ids in, a service call, nothing else."""

import logging

from celery import shared_task

from . import services
from .models import Trigger
from .retention_tasks import purge_exchanges  # noqa: F401  (registered with the worker through this module)

logger = logging.getLogger(__name__)


@shared_task(name="flows.dispatch_trigger", acks_late=True, ignore_result=True)
def dispatch_trigger(trigger_id: int) -> None:
    try:
        services.trigger_dispatch(trigger_id=trigger_id)
    except Trigger.DoesNotExist:  # deleted since it was queued: nothing to send
        logger.warning("Trigger %s no longer exists; its task is dropped.", trigger_id)


@shared_task(name="flows.sweep_triggers", ignore_result=True)
def sweep_triggers() -> dict[str, int]:
    from .resend_jobs import resend_jobs_recover
    from .webhooks.services import deliveries_resume_paused

    return {**services.trigger_sweep(), "jobs_recovered": resend_jobs_recover(),
            "deliveries_resumed": deliveries_resume_paused()}


@shared_task(name="flows.run_resend_job", acks_late=True, ignore_result=True)
def run_resend_job(job_id: int) -> None:
    from .resend_jobs import resend_job_run

    resend_job_run(job_id=job_id)


@shared_task(name="flows.dispatch_flow_batch", acks_late=True, ignore_result=True)
def dispatch_flow_batch(flow_id: int) -> None:
    services.flow_batch_dispatch(flow_id=flow_id)
