"""Business logic for triggers. Entry points (admin, console, API, webhooks, tasks, commands) call these."""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Mapping
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from .crypto import DecryptionError
from .inputs import InputValidationError, validate_inputs
from .models import Flow, ResendJob, Trigger
from .salesforce import SalesforceClient, SalesforceError

logger = logging.getLogger(__name__)

# A task may arrive a moment before its trigger's next_attempt_at (clocks, countdown rounding).
EARLY_TOLERANCE = dt.timedelta(seconds=2)
JITTER = (0.8, 1.2)


class IdempotencyConflict(Exception):
    """The idempotency key was used before with other inputs."""

    def __init__(self, existing: Trigger) -> None:
        super().__init__(f"Idempotency key already used for trigger {existing.pk} with other inputs.")
        self.existing = existing


def trigger_create(
    *,
    flow: Flow,
    inputs: Mapping[str, Any],
    source: str,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    idempotency_key: str | None = None,
    resend_of: Trigger | None = None,
    resend_job: ResendJob | None = None,
    enqueue: bool = True,
) -> Trigger:
    """Validates the inputs against the flow's FlowInputs and queues one Trigger, dispatched after commit.

    Nothing is stored when the inputs are invalid (InputValidationError names every problem). With an
    idempotency key already used with the same inputs, the existing trigger comes back with `replayed` set;
    with other inputs, IdempotencyConflict. `enqueue=False` leaves dispatching to the caller (trigger_flow
    --sync); should the caller die, the sweep enqueues it after FLOWGATE_SWEEP_GRACE.
    """
    if not flow.is_active or not flow.org.is_active:
        what = "flow" if not flow.is_active else "org"
        raise InputValidationError({"flow": [f"The {what} {flow if what == 'flow' else flow.org.slug} is not "
                                             f"active: activate it in Flowgate before firing it."]})
    cleaned = validate_inputs(flow.inputs.all(), inputs)
    if idempotency_key:
        existing = Trigger.objects.filter(flow=flow, idempotency_key=idempotency_key).first()
        if existing:
            return _replay(existing, cleaned)
    now = timezone.now()
    try:
        with transaction.atomic():
            trigger = Trigger.objects.create(
                flow=flow, inputs=cleaned, source=source, actor=actor, actor_label=actor_label,
                idempotency_key=idempotency_key or None, resend_of=resend_of, resend_job=resend_job,
                next_attempt_at=now, enqueued_at=now,
            )
            if enqueue:
                transaction.on_commit(partial(_enqueue, trigger.pk))
    except IntegrityError:
        if not idempotency_key:
            raise
        return _replay(Trigger.objects.get(flow=flow, idempotency_key=idempotency_key), cleaned)
    trigger.replayed = False
    return trigger


def _replay(existing: Trigger, inputs: dict[str, Any]) -> Trigger:
    if existing.inputs != inputs:
        raise IdempotencyConflict(existing)
    existing.replayed = True
    return existing


def trigger_resend(*, trigger: Trigger, actor: AbstractBaseUser | None, actor_label: str = "",
                   resend_job: ResendJob | None = None) -> Trigger:
    """A new Trigger with the original's inputs, linked to it; the original is left as it was."""
    return trigger_create(
        flow=trigger.flow, inputs=trigger.inputs, source=Trigger.Source.RESEND, actor=actor,
        actor_label=actor_label, resend_of=trigger, resend_job=resend_job,
    )


def trigger_has_successful_resend(trigger: Trigger) -> bool:
    return trigger.resends.filter(status=Trigger.Status.SUCCEEDED).exists()


def _lease() -> dt.timedelta:
    """How long a SENDING claim may last before the sweep takes the worker for lost: a token request and
    two REST calls (the second after a 401), each up to its timeouts, plus margin."""
    per_call = settings.FLOWGATE_HTTP_CONNECT_TIMEOUT + settings.FLOWGATE_HTTP_READ_TIMEOUT
    return dt.timedelta(seconds=3 * per_call + 30)


def trigger_dispatch(*, trigger_id: int) -> Trigger:
    """Sends a queued or retrying trigger to Salesforce once. Safe to call twice: only one caller claims it."""
    now = timezone.now()
    claimed = Trigger.objects.filter(
        pk=trigger_id, status__in=Trigger.WAITING, next_attempt_at__lte=now + EARLY_TOLERANCE
    ).update(status=Trigger.Status.SENDING, attempts=F("attempts") + 1, next_attempt_at=now + _lease(),
             enqueued_at=None, updated_at=now)
    trigger = Trigger.objects.select_related("flow__org").get(pk=trigger_id)
    if not claimed:
        return trigger
    flow = trigger.flow
    try:
        if not flow.is_active or not flow.org.is_active:
            raise SalesforceError("INACTIVE", f"The {'flow' if not flow.is_active else 'org'} was deactivated "
                                  "after this trigger was queued.", permanent=True,
                                  hint="Activate it, then re-send the trigger.")
        result = SalesforceClient(flow.org).invoke(flow.api_name, [trigger.inputs], trigger=trigger)[0]
    except SalesforceError as error:
        return _after_failure(trigger, error)
    except DecryptionError as error:
        return _after_failure(trigger, SalesforceError(
            "DECRYPTION_FAILED", str(error), permanent=True,
            hint="Restore the encryption key the credentials were saved with, or enter the credentials again.",
        ))
    if result.is_success:
        return _finish(trigger, Trigger.Status.SUCCEEDED, outputs=result.outputs)
    return _finish(trigger, Trigger.Status.FAILED, code=result.error_code, message=result.error_message)


def _finish(trigger: Trigger, status: str, *, outputs: Any = None, code: str = "", message: str = "",
            hint: str = "") -> Trigger:
    now = timezone.now()
    fields = dict(status=status, outputs=outputs, error_code=code, error_message=message, hint=hint,
                  next_attempt_at=None, enqueued_at=None, finished_at=now, updated_at=now)
    Trigger.objects.filter(pk=trigger.pk).update(**fields)
    for name, value in fields.items():
        setattr(trigger, name, value)
    return trigger


def _after_failure(trigger: Trigger, error: SalesforceError) -> Trigger:
    """Permanent errors end the trigger; transient ones wait for the next delay of FLOWGATE_RETRY_DELAYS."""
    delays = settings.FLOWGATE_RETRY_DELAYS
    if error.permanent or trigger.attempts > len(delays):
        return _finish(trigger, Trigger.Status.FAILED, code=error.code, message=error.message, hint=error.hint)
    now = timezone.now()
    delay = delays[trigger.attempts - 1] * random.uniform(*JITTER)  # jitter: no thundering herd after an outage
    next_at = now + dt.timedelta(seconds=delay)
    # Short delays ride on a broker countdown; long ones wait in the database for the sweep (a Redis broker
    # re-delivers unacknowledged messages after its visibility timeout, so long countdowns would run twice).
    use_countdown = delay <= settings.FLOWGATE_MAX_COUNTDOWN
    fields = dict(status=Trigger.Status.RETRYING, next_attempt_at=next_at, enqueued_at=next_at if use_countdown
                  else None, error_code=error.code, error_message=error.message, hint=error.hint, updated_at=now)
    Trigger.objects.filter(pk=trigger.pk).update(**fields)
    for name, value in fields.items():
        setattr(trigger, name, value)
    if use_countdown:
        transaction.on_commit(partial(_enqueue, trigger.pk, countdown=delay))
    return trigger


def _enqueue(trigger_id: int, countdown: float | None = None) -> None:
    from .tasks import dispatch_trigger

    try:
        dispatch_trigger.apply_async((trigger_id,), countdown=countdown)
    except Exception:  # the broker is down: the row is the source of truth, the sweep sends it later
        logger.warning("Could not enqueue trigger %s; the sweep will pick it up.", trigger_id, exc_info=True)
        Trigger.objects.filter(pk=trigger_id, status__in=Trigger.WAITING).update(enqueued_at=None)


def trigger_sweep(*, limit: int = 1000) -> dict[str, int]:
    """Enqueues due triggers that have no message on the way, and takes back triggers whose worker was lost."""
    now = timezone.now()
    grace = dt.timedelta(seconds=settings.FLOWGATE_SWEEP_GRACE)
    stale = list(
        Trigger.objects.filter(status=Trigger.Status.SENDING, next_attempt_at__lt=now)
        .select_related("flow__org")[:limit]
    )
    for trigger in stale:
        # The worker died mid-call: Salesforce may or may not have taken it. Retrying risks a duplicate,
        # not retrying risks a lost confirmation; at-least-once is the lesser harm.
        if Trigger.objects.filter(pk=trigger.pk, status=Trigger.Status.SENDING, next_attempt_at__lt=now).update(
            status=Trigger.Status.RETRYING, next_attempt_at=now, updated_at=now
        ):
            _after_failure(trigger, SalesforceError(
                "WORKER_LOST", "The worker stopped while sending this trigger.", permanent=False))
    due = list(
        Trigger.objects.filter(status__in=Trigger.WAITING, next_attempt_at__lte=now)
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=now - grace))
        .order_by("next_attempt_at").values_list("pk", flat=True)[:limit]
    )
    for trigger_id in due:
        Trigger.objects.filter(pk=trigger_id).update(enqueued_at=now)
        _enqueue(trigger_id)
    return {"requeued": len(due), "recovered": len(stale)}
