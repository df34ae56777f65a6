"""Celery entry points: ids in, a service call, nothing else."""

from celery import shared_task

from . import services


@shared_task(name="flows.dispatch_trigger", acks_late=True, ignore_result=True)
def dispatch_trigger(trigger_id: int) -> None:
    services.trigger_dispatch(trigger_id=trigger_id)


@shared_task(name="flows.sweep_triggers", ignore_result=True)
def sweep_triggers() -> dict[str, int]:
    from .resend_jobs import resend_jobs_recover

    return {**services.trigger_sweep(), "jobs_recovered": resend_jobs_recover()}


@shared_task(name="flows.run_resend_job", acks_late=True, ignore_result=True)
def run_resend_job(job_id: int) -> None:
    from .resend_jobs import resend_job_run

    resend_job_run(job_id=job_id)
