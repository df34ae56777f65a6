"""Re-sending many triggers: a chosen few at once, or every trigger matching a filter as a background job."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, F, Max
from django.utils import timezone

from . import services
from .inputs import InputValidationError
from .models import ResendJob, Trigger
from .plans import custom_plans
from .selectors import trigger_filter, triggers_with_successful_resend

logger = logging.getLogger(__name__)
BATCH = 200


@dataclass
class ResendOutcome:
    resent: list[Trigger] = field(default_factory=list)
    skipped: list[tuple[Trigger, str]] = field(default_factory=list)


def triggers_resend(*, triggers: Iterable[Trigger], actor: AbstractBaseUser | None, include_already_resent: bool,
                    resend_job: ResendJob | None = None) -> ResendOutcome:
    """Re-sends each trigger unless it already has a successful re-send (and that was not confirmed)."""
    triggers = list(triggers)
    already = triggers_with_successful_resend([t.pk for t in triggers])
    outcome = ResendOutcome()
    for trigger in triggers:
        if trigger.pk in already and not include_already_resent:
            outcome.skipped.append((trigger, "already re-sent successfully"))
            continue
        try:
            outcome.resent.append(services.trigger_resend(trigger=trigger, actor=actor, resend_job=resend_job))
        except InputValidationError as invalid:  # the flow's inputs changed since
            outcome.skipped.append((trigger, str(invalid)))
    return outcome


def resend_job_create(*, params: Mapping[str, str], actor: AbstractBaseUser | None,
                      include_already_resent: bool) -> ResendJob:
    matching = trigger_filter(params)
    with transaction.atomic():
        job = ResendJob.objects.create(
            created_by=actor, filters=dict(params), include_already_resent=include_already_resent,
            max_trigger_id=matching.aggregate(m=Max("id"))["m"] or 0, total=matching.count(),
        )
        transaction.on_commit(partial(_enqueue, job.pk))
    return job


def _enqueue(job_id: int) -> None:
    from .tasks import run_resend_job

    try:
        run_resend_job.delay(job_id)
    except Exception:  # the broker is down: the job row waits for the sweep (resend_jobs_recover)
        logger.warning("Could not enqueue re-send job %s; the sweep will pick it up.", job_id, exc_info=True)


def resend_job_run(*, job_id: int) -> ResendJob:
    """Works through the job's triggers in batches; safe to run again after a crash (done ones are skipped)."""
    now = timezone.now()
    if not ResendJob.objects.filter(pk=job_id, status=ResendJob.Status.QUEUED).update(
        status=ResendJob.Status.RUNNING, started_at=now, updated_at=now
    ):
        return ResendJob.objects.get(pk=job_id)
    job = ResendJob.objects.select_related("created_by").get(pk=job_id)
    try:
        with custom_plans():  # it runs the console's filters (flows/plans.py)
            matching = trigger_filter(job.filters).filter(pk__lte=job.max_trigger_id)
            done = set(Trigger.objects.filter(resend_job=job).values_list("resend_of_id", flat=True))
            # A job taken back after its worker died starts its counts again; what it re-sent stays re-sent.
            ResendJob.objects.filter(pk=job.pk).update(processed=0, skipped=0, resent=len(done))
            cursor = job.max_trigger_id + 1
            while batch := list(matching.filter(pk__lt=cursor)[:BATCH]):
                cursor = batch[-1].pk
                todo = [t for t in batch if t.pk not in done]
                with transaction.atomic():
                    outcome = triggers_resend(triggers=todo, actor=job.created_by, resend_job=job,
                                              include_already_resent=job.include_already_resent)
                    ResendJob.objects.filter(pk=job.pk).update(
                        processed=F("processed") + len(batch), resent=F("resent") + len(outcome.resent),
                        skipped=F("skipped") + len(outcome.skipped), updated_at=timezone.now(),
                    )
            ResendJob.objects.filter(pk=job.pk).update(status=ResendJob.Status.DONE, finished_at=timezone.now())
    except Exception as error:
        logger.exception("Re-send job %s failed", job_id)
        ResendJob.objects.filter(pk=job.pk).update(status=ResendJob.Status.FAILED, error=str(error)[:2000],
                                                   finished_at=timezone.now())
    job.refresh_from_db()
    return job


def resend_job_outcomes(job: ResendJob) -> dict[str, int]:
    """How the job's re-sends fared so far, by status."""
    rows = Trigger.objects.filter(resend_job=job).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


STALE_AFTER = dt.timedelta(minutes=5)


def resend_jobs_recover(*, now: dt.datetime | None = None) -> int:
    """Queues again the jobs whose worker stopped updating them or whose message never reached one (the sweep
    calls this). A job sent twice runs once: only one run claims it."""
    now = now or timezone.now()
    waiting = (ResendJob.Status.QUEUED, ResendJob.Status.RUNNING)
    stale = list(ResendJob.objects.filter(status__in=waiting, updated_at__lt=now - STALE_AFTER)
                 .values_list("pk", flat=True))
    for job_id in stale:
        if ResendJob.objects.filter(pk=job_id, status__in=waiting, updated_at__lt=now - STALE_AFTER).update(
            status=ResendJob.Status.QUEUED, updated_at=now
        ):
            _enqueue(job_id)
    return len(stale)
