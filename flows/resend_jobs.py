"""Re-sending triggers, one, a chosen few, every trigger matching a filter or an admin selection (the last two as a
background job), under one rule (triggers_resend): a re-send action makes at most one new trigger per chain."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, F, Max, QuerySet
from django.utils import timezone

from . import services
from .inputs import InputValidationError
from .models import ResendJob, Trigger
from .plans import custom_plans
from .selectors import ChainState, chain_states, trigger_filter

logger = logging.getLogger(__name__)
BATCH = 200
# A selection re-sent as a job (the admin's action); more is what the console's filter-wide re-send is for.
MAX_JOB_SELECTION = 1000

# Why a trigger was not re-sent: the keys of ResendJob.skips, each with its count of triggers.
SKIP_IN_FLIGHT = "a trigger of its chain is still on its way"
SKIP_DELIVERED = "its chain was already delivered (succeeded, or unknown)"
SKIP_SAME_CHAIN = "its chain was re-sent once (one new trigger per chain)"
SKIP_INPUTS = "its inputs no longer fit the flow"
SKIP_INACTIVE = "its flow or org is not active"


@dataclass(frozen=True)
class Skip:
    trigger: Trigger
    reason: str  # one of SKIP_*
    detail: str  # the reason with the triggers concerned, for a person

    def __str__(self) -> str:
        return f"Trigger {self.trigger.pk} skipped: {self.detail}"


@dataclass
class ResendOutcome:
    resent: list[Trigger] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)


def triggers_resend(*, triggers: Iterable[Trigger], actor: AbstractBaseUser | None, include_delivered: bool,
                    resend_job: ResendJob | None = None, decided: dict[int, Trigger | Skip] | None = None
                    ) -> ResendOutcome:
    """Re-sends the chains of `triggers` (each trigger with every re-send descending from its original): per
    chain at most one new trigger, a re-send of the chain's original with its original inputs. A chain is skipped
    when one of its triggers is still on its way (it could still reach the customer), when it was delivered
    (a succeeded or unknown trigger) unless `include_delivered`, and when the inputs no longer fit the flow.

    `decided` holds the chains this re-send action already handled (a job's earlier batches), by origin id: their
    triggers are skipped alike. It is updated with this call's decisions.
    """
    triggers = list(triggers)
    decided = {} if decided is None else decided
    outcome = ResendOutcome()
    origin_ids = sorted({t.chain_origin_id for t in triggers} - set(decided))
    with transaction.atomic():
        # The chains' originals, locked (in id order, so two re-sends never wait on each other crosswise): two
        # people re-sending the same chain at once make one trigger, the second finding the first's on its way.
        origins = {t.pk: t for t in Trigger.objects.select_for_update(of=("self",))
                   .select_related("flow__org").prefetch_related("flow__inputs")
                   .filter(pk__in=origin_ids).order_by("pk")}
        states = chain_states(origin_ids) if origin_ids else {}
        for trigger in triggers:
            chain = trigger.chain_origin_id
            if chain not in decided:
                decided[chain] = _chain_resend(
                    trigger=trigger, origin=origins.get(chain, trigger), state=states.get(chain), actor=actor,
                    include_delivered=include_delivered, resend_job=resend_job)
                if isinstance(decided[chain], Trigger):
                    outcome.resent.append(decided[chain])
                    continue
            outcome.skipped.append(_skip_like(trigger, decided[chain]))
    return outcome


def _chain_resend(*, trigger: Trigger, origin: Trigger, state: ChainState | None, actor: AbstractBaseUser | None,
                  include_delivered: bool, resend_job: ResendJob | None) -> Trigger | Skip:
    if state and state.in_flight:
        on_its_way = state.in_flight[0]
        detail = (f"trigger {on_its_way} is still on its way (queued, sending or retrying)"
                  if on_its_way == trigger.pk else f"a re-send is already on its way (trigger {on_its_way})")
        return Skip(trigger, SKIP_IN_FLIGHT, detail)
    if state and state.delivered and not include_delivered:
        pk, status = state.delivered[0]
        how = "succeeded" if status == Trigger.Status.SUCCEEDED else "may have reached the customer (unknown)"
        return Skip(trigger, SKIP_DELIVERED, f"its chain was already delivered: trigger {pk} {how}")
    if not origin.flow.is_active or not origin.flow.org.is_active:
        return Skip(trigger, SKIP_INACTIVE, f"the flow {origin.flow} or its org is not active: activate it first")
    try:
        return services.trigger_resend(trigger=origin, actor=actor, resend_job=resend_job)
    except InputValidationError as invalid:  # the flow's inputs changed since
        return Skip(trigger, SKIP_INPUTS, f"its inputs no longer fit the flow: {invalid}")


def _skip_like(trigger: Trigger, decision: Trigger | Skip) -> Skip:
    """Another trigger of a chain already decided in this re-send."""
    if isinstance(decision, Skip):
        return Skip(trigger, decision.reason, decision.detail)
    return Skip(trigger, SKIP_SAME_CHAIN, f"its chain was re-sent as trigger {decision.pk}")


def resend_job_create(*, actor: AbstractBaseUser | None, include_delivered: bool,
                      params: Mapping[str, str] | None = None, trigger_ids: Sequence[int] | None = None
                      ) -> ResendJob:
    """A job re-sending every trigger matching the console filter `params`, or the triggers `trigger_ids` (at most
    MAX_JOB_SELECTION), as they are now: triggers created later are not swept in."""
    if (params is None) == (trigger_ids is None):
        raise ValueError("A re-send job takes either a filter (params) or a selection (trigger_ids).")
    ids = None
    if trigger_ids is not None:
        ids = sorted({int(pk) for pk in trigger_ids})
        if len(ids) > MAX_JOB_SELECTION:
            raise ValueError(f"{len(ids):,} triggers selected: re-send at most {MAX_JOB_SELECTION:,} at once, or "
                             f"re-send every trigger matching a filter from the console.")
    matching = Trigger.objects.filter(pk__in=ids) if ids is not None else trigger_filter(params or {})
    with transaction.atomic():
        job = ResendJob.objects.create(
            created_by=actor, filters=dict(params or {}), trigger_ids=ids, include_delivered=include_delivered,
            max_trigger_id=matching.aggregate(m=Max("id"))["m"] or 0, total=matching.count(),
        )
        transaction.on_commit(partial(_enqueue, job.pk))
    return job


def job_triggers(job: ResendJob) -> QuerySet[Trigger]:
    """The triggers a job re-sends, newest first: its selection, or its filter replayed."""
    if job.trigger_ids is not None:
        return Trigger.objects.filter(pk__in=job.trigger_ids).select_related("flow__org", "actor").order_by("-id")
    return trigger_filter(job.filters)


def _enqueue(job_id: int) -> None:
    from .tasks import run_resend_job

    try:
        run_resend_job.delay(job_id)
    except Exception:  # the broker is down: the job row waits for the sweep (resend_jobs_recover)
        logger.warning("Could not enqueue re-send job %s; the sweep will pick it up.", job_id, exc_info=True)


def resend_job_run(*, job_id: int) -> ResendJob:
    """Works through the job's triggers in batches, one new trigger per chain across all of them; safe to run
    again after a crash (the chains it re-sent stay re-sent, once)."""
    now = timezone.now()
    if not ResendJob.objects.filter(pk=job_id, status=ResendJob.Status.QUEUED).update(
        status=ResendJob.Status.RUNNING, started_at=now, updated_at=now
    ):
        return ResendJob.objects.get(pk=job_id)
    job = ResendJob.objects.select_related("created_by").get(pk=job_id)
    try:
        with custom_plans():  # it runs the console's filters (flows/plans.py)
            matching = job_triggers(job).filter(pk__lte=job.max_trigger_id)
            earlier = {t.chain_origin_id: t for t in Trigger.objects.filter(resend_job=job).only("pk", "origin_id")}
            # A job taken back after its worker died starts its counts again; what it re-sent stays re-sent.
            ResendJob.objects.filter(pk=job.pk).update(processed=0, skipped=0, skips={}, resent=len(earlier))
            decided: dict[int, Trigger | Skip] = {}
            skips: Counter[str] = Counter()
            cursor = job.max_trigger_id + 1
            while batch := list(matching.filter(pk__lt=cursor)[:BATCH]):
                cursor = batch[-1].pk
                todo = []
                for trigger in batch:
                    chain = trigger.chain_origin_id
                    if chain in earlier and chain not in decided:
                        decided[chain] = earlier[chain]  # the trigger that had it re-sent: counted in `resent`
                    else:
                        todo.append(trigger)
                with transaction.atomic():
                    outcome = triggers_resend(triggers=todo, actor=job.created_by, resend_job=job, decided=decided,
                                              include_delivered=job.include_delivered)
                    skips.update(skip.reason for skip in outcome.skipped)
                    ResendJob.objects.filter(pk=job.pk).update(
                        processed=F("processed") + len(batch), resent=F("resent") + len(outcome.resent),
                        skipped=F("skipped") + len(outcome.skipped), skips=dict(skips), updated_at=timezone.now(),
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
