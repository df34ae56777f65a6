"""Business logic for triggers. Entry points (admin, console, API, webhooks, tasks, commands) call these."""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.core.cache import cache
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from .crypto import DecryptionError
from .inputs import InputValidationError, validate_inputs
from .models import Flow, Org, ResendJob, Trigger
from .pacing import SETTLE_SECONDS, lease_seconds, org_slot
from .salesforce import InvocationResult, SalesforceClient, SalesforceError
from .salesforce.errors import UNKNOWN, is_daily_limit
from .salesforce.recording import Claim
from .rows import update_row
from .selectors import trigger_for_dispatch

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
    cleaned = validate_inputs(flow.inputs.all(), inputs, reserved=flow.trigger_id_input)
    if idempotency_key:
        existing = Trigger.objects.filter(flow=flow, idempotency_key=idempotency_key).first()
        if existing:
            return _replay(existing, cleaned)
    now = timezone.now()
    # One INSERT needs no transaction of its own (BEGIN and COMMIT are two more round trips per trigger); inside
    # a caller's transaction, a savepoint keeps an idempotency collision from spoiling it.
    in_transaction = transaction.get_connection().in_atomic_block
    try:
        with transaction.atomic() if in_transaction else nullcontext():
            trigger = Trigger.objects.create(
                flow=flow, inputs=cleaned, source=source, actor=actor, actor_label=actor_label,
                idempotency_key=idempotency_key or None, resend_of=resend_of, resend_job=resend_job,
                origin_id=resend_of.chain_origin_id if resend_of is not None else None,
                next_attempt_at=now, enqueued_at=now,
            )
            if enqueue:
                transaction.on_commit(partial(_enqueue_new, trigger.pk, flow))
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


class NotUnknown(Exception):
    """Only a trigger whose outcome is unknown can be marked as delivered."""


def trigger_mark_delivered(*, trigger: Trigger, actor: AbstractBaseUser) -> Trigger:
    """A person checked that an `unknown` trigger reached the customer: it becomes `succeeded`, with who and when.
    Conditional on the status still being unknown, so two people deciding at once decide once."""
    now = timezone.now()
    fields = dict(status=Trigger.Status.SUCCEEDED, delivered_by=actor, delivered_at=now, updated_at=now)
    if not Trigger.objects.filter(pk=trigger.pk, status=Trigger.Status.UNKNOWN).update(**fields):
        trigger.refresh_from_db()
        raise NotUnknown(f"Trigger {trigger.pk} is {trigger.status}, not unknown: nothing to mark.")
    for name, value in fields.items():
        setattr(trigger, name, value)
    logger.info("Trigger %s marked as delivered by %s.", trigger.pk, actor.get_username())
    return trigger


def _lease() -> dt.timedelta:
    return dt.timedelta(seconds=lease_seconds())


def _claimed_values(now: dt.datetime, token: str) -> dict[str, Any]:
    return dict(status=Trigger.Status.SENDING, next_attempt_at=now + _lease(), enqueued_at=None, claim_token=token,
                updated_at=now)


def _new_claim(started: float, attempt: int | None) -> Claim:
    """`started` is the time.monotonic() read with the `now` the claim's lease is counted from."""
    return Claim(token=uuid.uuid4().hex, attempt=attempt, deadline=started + lease_seconds() - SETTLE_SECONDS)


def _claim(triggers: QuerySet[Trigger], now: dt.datetime, claim: Claim) -> int:
    """The conditional update that makes a dispatch the only one sending these triggers."""
    return triggers.filter(status__in=Trigger.WAITING, next_attempt_at__lte=now + EARLY_TOLERANCE).update(
        attempts=F("attempts") + 1, **_claimed_values(now, claim.token),
    )


def _claim_one(trigger: Trigger, now: dt.datetime, started: float) -> Claim | None:
    """_claim for the one trigger in hand, also requiring the attempts read with it, so the row it takes is the
    row in hand: its new values are set on it without reading it again."""
    claim = _new_claim(started, trigger.attempts + 1)
    values = _claimed_values(now, claim.token)
    if not update_row(Trigger, trigger.pk, values, increment=["attempts"], where=[
        ("attempts", "=", trigger.attempts), ("status", "in", Trigger.WAITING),
        ("next_attempt_at", "<=", now + EARLY_TOLERANCE),
    ]):
        return None
    for name, value in {**values, "attempts": trigger.attempts + 1}.items():
        setattr(trigger, name, value)
    return claim


def _settle_one(trigger: Trigger, claim: Claim, fields: dict[str, Any]) -> bool:
    """Writes a dispatch's result, only while its claim still holds the trigger: a result that comes after the
    trigger was taken back (the lease ran out and the sweep, or another worker, has it now) changes nothing.
    Its Exchange is recorded all the same, marked late."""
    if not update_row(Trigger, trigger.pk, fields, where=[
        ("claim_token", "=", claim.token), ("status", "=", Trigger.Status.SENDING),
    ]):
        logger.warning("Trigger %s: the result of attempt %s (%s) came after the trigger was taken back; it was "
                       "recorded and not applied.", trigger.pk, claim.attempt, fields.get("error_code") or
                       fields.get("status"))
        trigger.refresh_from_db()
        trigger.settled = False
        return False
    for name, value in fields.items():
        setattr(trigger, name, value)
    trigger.settled = True  # for callers that only get the trigger back (the sweep counts what it took back)
    return True


def _check_active(flow: Flow) -> None:
    if not flow.is_active or not flow.org.is_active:
        raise SalesforceError("INACTIVE", f"The {'flow' if not flow.is_active else 'org'} was deactivated "
                              "after this trigger was queued.", permanent=True)


def _decryption_failure(error: DecryptionError) -> SalesforceError:
    return SalesforceError("DECRYPTION_FAILED", str(error), permanent=True)


def _call_inputs(trigger: Trigger, flow: Flow) -> dict[str, Any]:
    """What is sent for the trigger: its inputs, and its key in the flow's trigger id input when it has one (the
    same key on every retry, so the flow can tell a second run of the same trigger)."""
    if not flow.trigger_id_input:
        return trigger.inputs
    return {**trigger.inputs, flow.trigger_id_input: str(trigger.key)}


def trigger_dispatch(*, trigger_id: int) -> Trigger:
    """Sends a queued or retrying trigger to Salesforce once. Safe to call twice: only one caller claims it, and
    only that claim may write the result.

    A trigger of a micro-batched flow is handed to its flow's next batch. A paused org (REQUEST_LIMIT_EXCEEDED)
    or one at its concurrent-call cap puts the trigger back without using an attempt.
    """
    now, started = timezone.now(), time.monotonic()
    trigger = trigger_for_dispatch(trigger_id)
    if trigger.status not in Trigger.WAITING or (
        trigger.next_attempt_at and trigger.next_attempt_at > now + EARLY_TOLERANCE
    ):
        return trigger
    flow = trigger.flow
    if flow.batch_enabled:
        _schedule_batch(flow)
        return trigger
    if flow.org.paused_until and flow.org.paused_until > now:
        return _postpone(trigger, until=flow.org.paused_until)
    with org_slot(flow.org) as got_slot:
        if not got_slot:
            return _postpone(trigger, until=now + dt.timedelta(seconds=random.uniform(0.2, 1.0)))
        claim = _claim_one(trigger, now, started)
        if claim is None:
            trigger.refresh_from_db()
            return trigger
        try:
            _check_active(flow)
            client = SalesforceClient(flow.org, credential_version=trigger.credential_version, claim=claim)
            result = client.invoke(flow.api_name, [_call_inputs(trigger, flow)], trigger=trigger)[0]
        except SalesforceError as error:
            return _after_failure(trigger, error, claim)
        except DecryptionError as error:
            return _after_failure(trigger, _decryption_failure(error), claim)
    if result.is_success:
        return _finish(trigger, claim, Trigger.Status.SUCCEEDED, outputs=result.outputs)
    return _finish(trigger, claim, Trigger.Status.FAILED, code=result.error_code, message=result.error_message,
                   hint=result.hint)


def _postpone(trigger: Trigger, *, until: dt.datetime) -> Trigger:
    """Back in the queue until `until`, attempts untouched: waiting for a slot or a pause is not a try."""
    now = timezone.now()
    delay = max((until - now).total_seconds(), 0)
    use_countdown = delay <= settings.FLOWGATE_MAX_COUNTDOWN
    if Trigger.objects.filter(pk=trigger.pk, status__in=Trigger.WAITING).update(
        next_attempt_at=until, enqueued_at=until if use_countdown else None, updated_at=now
    ) and use_countdown:
        transaction.on_commit(partial(_enqueue, trigger.pk, countdown=delay))
    trigger.refresh_from_db()
    return trigger


# --- micro-batching -----------------------------------------------------------------------------------


def _batch_key(flow: Flow) -> str:
    return f"flowgate:batch-scheduled:{flow.pk}"


def _schedule_batch(flow: Flow, *, countdown: float | None = None) -> None:
    """At most one batch waits per flow: triggers arriving within its window ride along with it."""
    window = flow.batch_window_ms / 1000 if countdown is None else countdown
    if cache.add(_batch_key(flow), 1, timeout=max(window * 2, 1)):
        from .tasks import dispatch_flow_batch

        try:
            dispatch_flow_batch.apply_async((flow.pk,), countdown=window)
        except Exception:  # broker down: the sweep schedules the flow's batch later
            cache.delete(_batch_key(flow))
            logger.warning("Could not enqueue a batch of flow %s; the sweep will.", flow.pk, exc_info=True)


def _due_ids(flow: Flow, now: dt.datetime) -> list[int]:
    """The flow's due triggers for its next batch, oldest first. Read before the claim: the claim itself decides
    which of them this batch takes."""
    due = Trigger.objects.filter(flow=flow, status__in=Trigger.WAITING, next_attempt_at__lte=now + EARLY_TOLERANCE)
    return list(due.order_by("id").values_list("pk", flat=True)[: flow.batch_max_inputs])


def flow_batch_dispatch(*, flow_id: int) -> int:
    """Sends up to batch_max_inputs due triggers of a flow in one Actions call; returns how many were sent.

    Each result element settles its own trigger; a transient failure of the whole call retries each trigger
    on its own schedule (they batch again when due). The call's Exchange is linked to every trigger in it.
    """
    flow = Flow.objects.select_related("org").get(pk=flow_id)
    cache.delete(_batch_key(flow))  # from here on, new arrivals schedule the next batch
    now, started = timezone.now(), time.monotonic()
    if flow.org.paused_until and flow.org.paused_until > now:
        Trigger.objects.filter(flow=flow, status__in=Trigger.WAITING, next_attempt_at__lte=now + EARLY_TOLERANCE
                               ).update(next_attempt_at=flow.org.paused_until, enqueued_at=None, updated_at=now)
        return 0
    with org_slot(flow.org) as got_slot:
        if not got_slot:
            _schedule_batch(flow, countdown=random.uniform(0.2, 1.0))
            return 0
        ids = _due_ids(flow, now)
        claim = _new_claim(started, None)
        if not ids or not _claim(Trigger.objects.filter(pk__in=ids), now, claim):
            return 0
        batch = list(Trigger.objects.filter(pk__in=ids, claim_token=claim.token, status=Trigger.Status.SENDING)
                     .order_by("id"))
        if len(ids) == flow.batch_max_inputs:
            _schedule_batch(flow, countdown=0)  # more may be waiting: the next batch need not wait a window
        try:
            _check_active(flow)
            results = SalesforceClient(flow.org, claim=claim).invoke(
                flow.api_name, [_call_inputs(t, flow) for t in batch], triggers=batch)
        except (SalesforceError, DecryptionError) as error:
            failure = _decryption_failure(error) if isinstance(error, DecryptionError) else error
            for trigger in batch:
                _after_failure(trigger, failure, claim)
            return len(batch)
    _settle(batch, results, claim)
    return len(batch)


def _settle(batch: list[Trigger], results: list[InvocationResult], claim: Claim) -> None:
    """Each trigger takes its own element's outcome, all in one transaction, and only the triggers the batch's
    claim still holds (the others were taken back meanwhile: their late answer stays in the Exchange). The fields
    every success (or every failure) shares go in one plain UPDATE; only what differs per trigger (outputs; a
    failure's code, message and hint) goes through bulk_update, whose CASE per field and row costs far more than
    the call to Salesforce."""
    now = timezone.now()
    final = dict(next_attempt_at=None, enqueued_at=None, finished_at=now, updated_at=now)
    with transaction.atomic():
        held = set(Trigger.objects.select_for_update().filter(
            pk__in=[t.pk for t in batch], claim_token=claim.token, status=Trigger.Status.SENDING,
        ).values_list("pk", flat=True))
        succeeded, failed = [], []
        for trigger, result in zip(batch, results):
            if trigger.pk not in held:
                logger.warning("Trigger %s: its batch's result came after it was taken back; recorded, not "
                               "applied.", trigger.pk)
                continue
            trigger.status = Trigger.Status.SUCCEEDED if result.is_success else Trigger.Status.FAILED
            trigger.outputs = result.outputs if result.is_success else None
            trigger.error_code = "" if result.is_success else result.error_code
            trigger.error_message = "" if result.is_success else result.error_message
            trigger.hint = "" if result.is_success else result.hint
            for name, value in final.items():
                setattr(trigger, name, value)
            (succeeded if result.is_success else failed).append(trigger)
        if succeeded:
            Trigger.objects.filter(pk__in=[t.pk for t in succeeded]).update(
                status=Trigger.Status.SUCCEEDED, error_code="", error_message="", hint="", **final)
            _write_outputs(succeeded)
        if failed:
            Trigger.objects.filter(pk__in=[t.pk for t in failed]).update(
                status=Trigger.Status.FAILED, outputs=None, **final)
            Trigger.objects.bulk_update(failed, ["error_code", "error_message", "hint"])


def _write_outputs(triggers: list[Trigger]) -> None:
    """Each trigger's own outputs: on PostgreSQL one UPDATE joined to the arrays of ids and JSON texts,
    elsewhere bulk_update."""
    if connection.vendor != "postgresql":
        Trigger.objects.bulk_update(triggers, ["outputs"])
        return
    field = Trigger._meta.get_field("outputs")
    texts = [None if t.outputs is None else json.dumps(t.outputs, cls=field.encoder) for t in triggers]
    table = connection.ops.quote_name(Trigger._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS t SET outputs = v.outputs::jsonb "
            "FROM unnest(%s::bigint[], %s::text[]) AS v(id, outputs) WHERE t.id = v.id",
            [[t.pk for t in triggers], texts],
        )


def _finish(trigger: Trigger, claim: Claim, status: str, *, outputs: Any = None, code: str = "",
            message: str = "", hint: str = "") -> Trigger:
    now = timezone.now()
    _settle_one(trigger, claim, dict(
        status=status, outputs=outputs, error_code=code, error_message=message, hint=hint, next_attempt_at=None,
        enqueued_at=None, finished_at=now, updated_at=now,
    ))
    return trigger


UNKNOWN_HINT = (
    "Salesforce may have run this flow, and Flowgate cannot tell (the error above says why). It was not retried, "
    "because the flow's delivery is at most once. Check in Salesforce whether the customer got it, then choose Mark "
    "as delivered or Re-send in the console."
)


def _after_failure(trigger: Trigger, error: SalesforceError, claim: Claim) -> Trigger:
    """Permanent errors end the trigger; transient ones wait for the next delay of FLOWGATE_RETRY_DELAYS. An
    outcome that may hide a run ends an at-most-once flow's trigger as unknown, for a person to decide."""
    if error.code == "REQUEST_LIMIT_EXCEEDED":
        if is_daily_limit(error.code, error.message):
            return _pause_org(trigger, error, claim)
        return _back_off(trigger, error, claim)
    if error.may_have_run and trigger.flow.delivery == Flow.Delivery.AT_MOST_ONCE:
        return _finish(trigger, claim, Trigger.Status.UNKNOWN, code=error.code, message=error.message,
                       hint=UNKNOWN_HINT)
    delays = settings.FLOWGATE_RETRY_DELAYS
    if error.permanent or trigger.attempts > len(delays):
        return _finish(trigger, claim, Trigger.Status.FAILED, code=error.code, message=error.message,
                       hint=error.hint)
    now = timezone.now()
    delay = delays[trigger.attempts - 1] * random.uniform(*JITTER)  # jitter: no thundering herd after an outage
    next_at = now + dt.timedelta(seconds=delay)
    # Short delays ride on a broker countdown; long ones wait in the database for the sweep (a Redis broker
    # re-delivers unacknowledged messages after its visibility timeout, so long countdowns would run twice).
    use_countdown = delay <= settings.FLOWGATE_MAX_COUNTDOWN
    if _settle_one(trigger, claim, dict(
        status=Trigger.Status.RETRYING, next_attempt_at=next_at, enqueued_at=next_at if use_countdown else None,
        error_code=error.code, error_message=error.message, hint=error.hint, updated_at=now,
    )) and use_countdown:
        transaction.on_commit(partial(_enqueue, trigger.pk, countdown=delay))
    return trigger


def _pause_org(trigger: Trigger, error: SalesforceError, claim: Claim) -> Trigger:
    """The org's daily API limit is spent: no call to it until the pause ends, and this trigger gets its
    attempt back (the limit says nothing about the trigger)."""
    now = timezone.now()
    until = now + dt.timedelta(seconds=settings.FLOWGATE_LIMIT_PAUSE_SECONDS)
    Org.objects.filter(pk=trigger.flow.org_id).filter(
        Q(paused_until__isnull=True) | Q(paused_until__lt=until)).update(paused_until=until)
    logger.warning("Org %s answered REQUEST_LIMIT_EXCEEDED (%s): paused until %s.", trigger.flow.org_id,
                   error.message, until)
    _settle_one(trigger, claim, dict(
        status=Trigger.Status.RETRYING, attempts=max(trigger.attempts - 1, 0), next_attempt_at=until,
        enqueued_at=None, error_code=error.code, error_message=error.message,
        hint=f"{error.hint} Paused until {until:%Y-%m-%d %H:%M} UTC; no retry is used up.".strip(), updated_at=now,
    ))
    return trigger


def _back_off(trigger: Trigger, error: SalesforceError, claim: Claim) -> Trigger:
    """Too many long requests in the org at once (ConcurrentPerOrgLongTxn): it clears in seconds, so this trigger
    waits a few jittered seconds, with its attempt given back and the org not paused."""
    now = timezone.now()
    delay = settings.FLOWGATE_CONCURRENT_LIMIT_BACKOFF * random.uniform(0.5, 1.5)
    next_at = now + dt.timedelta(seconds=delay)
    if _settle_one(trigger, claim, dict(
        status=Trigger.Status.RETRYING, attempts=max(trigger.attempts - 1, 0), next_attempt_at=next_at,
        enqueued_at=next_at, error_code=error.code, error_message=error.message, hint=error.hint, updated_at=now,
    )):
        transaction.on_commit(partial(_enqueue, trigger.pk, countdown=delay))
    return trigger


def triggers_enqueue(*, flow: Flow, trigger_ids: Sequence[int]) -> None:
    """After commit, sends triggers created with `trigger_create(enqueue=False)` to the workers, for callers that
    create many at once (the batch API): a micro-batched flow's next batch is scheduled once for all of them
    rather than once per trigger; other flows get one message per trigger, and if the broker refuses one, the
    rest are left to the sweep at once instead of each waiting out the broker's timeouts."""
    if not trigger_ids:
        return
    if flow.batch_enabled:
        transaction.on_commit(partial(_schedule_batch, flow))
    else:
        transaction.on_commit(partial(_enqueue_many, list(trigger_ids)))


def _enqueue_many(trigger_ids: list[int]) -> None:
    from .tasks import dispatch_trigger

    for position, trigger_id in enumerate(trigger_ids):
        try:
            dispatch_trigger.apply_async((trigger_id,))
        except Exception:  # the broker is down: the rows are the source of truth, the sweep sends them later
            logger.warning("Could not enqueue %s triggers; the sweep will pick them up.",
                           len(trigger_ids) - position, exc_info=True)
            Trigger.objects.filter(pk__in=trigger_ids[position:], status__in=Trigger.WAITING).update(
                enqueued_at=None)
            return


def _enqueue_new(trigger_id: int, flow: Flow) -> None:
    if flow.batch_enabled:
        _schedule_batch(flow)
    else:
        _enqueue(trigger_id)


def _enqueue(trigger_id: int, countdown: float | None = None) -> None:
    from .tasks import dispatch_trigger

    try:
        dispatch_trigger.apply_async((trigger_id,), countdown=countdown)
    except Exception:  # the broker is down: the row is the source of truth, the sweep sends it later
        logger.warning("Could not enqueue trigger %s; the sweep will pick it up.", trigger_id, exc_info=True)
        Trigger.objects.filter(pk=trigger_id, status__in=Trigger.WAITING).update(enqueued_at=None)


SWEEP_LOCK = "flowgate:sweep"


def _dispatch_queue_length() -> int | None:
    """Messages waiting in the dispatch queue, or None when the broker cannot say (it is down)."""
    from kombu.exceptions import ChannelError

    from portal.celery import app

    try:
        with app.connection_for_read() as connection:
            return connection.default_channel.queue_declare(queue=app.conf.task_default_queue, passive=True)[1]
    except ChannelError:  # Redis drops an empty list: no queue is an empty queue
        return 0
    except Exception:
        return None


def trigger_sweep(*, limit: int = 1000) -> dict[str, int]:
    """Takes back triggers whose worker was lost, and enqueues due triggers that have no message on the way.

    A due trigger whose message went out but has not reached a worker after FLOWGATE_SWEEP_GRACE is taken for
    lost only while the dispatch queue is empty: a message still waiting in a deep queue is not lost, and
    sending it again would only deepen the queue. One sweep at a time.
    """
    if not cache.add(SWEEP_LOCK, 1, timeout=max(settings.FLOWGATE_SWEEP_INTERVAL * 4, 30)):
        return {"requeued": 0, "recovered": 0, "skipped": 1}
    try:
        return _sweep(limit)
    finally:
        cache.delete(SWEEP_LOCK)


def _sweep(limit: int) -> dict[str, int]:
    now = timezone.now()
    grace = dt.timedelta(seconds=settings.FLOWGATE_SWEEP_GRACE)
    stale = list(
        Trigger.objects.filter(status=Trigger.Status.SENDING, next_attempt_at__lt=now)
        .select_related("flow__org")[:limit]
    )
    recovered = 0
    for trigger in stale:
        # The worker stopped mid-dispatch: Salesforce may or may not have taken the call. The flow's delivery
        # decides: at least once retries it (a possible duplicate), at most once leaves it unknown for a person.
        # Taken back under the claim it was read with, so a result written meanwhile wins.
        lost = SalesforceError("WORKER_LOST", f"The worker stopped while sending this trigger (its lease of "
                               f"{lease_seconds():.0f} s ran out).", permanent=False, outcome=UNKNOWN)
        _after_failure(trigger, lost, Claim(token=trigger.claim_token, attempt=trigger.attempts, deadline=0.0))
        recovered += getattr(trigger, "settled", False)
    no_message = Q(enqueued_at__isnull=True)
    if _dispatch_queue_length() == 0:
        no_message |= Q(enqueued_at__lt=now - grace)
    due = list(
        Trigger.objects.filter(status__in=Trigger.WAITING, next_attempt_at__lte=now).filter(no_message)
        .order_by("next_attempt_at").values_list("pk", "flow_id")[:limit]
    )
    Trigger.objects.filter(pk__in=[pk for pk, _ in due]).update(enqueued_at=now)
    batched = set(Flow.objects.filter(batch_enabled=True, pk__in={f for _, f in due}).values_list("pk", flat=True))
    for flow_id in batched:
        _schedule_batch(Flow.objects.get(pk=flow_id))
    for trigger_id, flow_id in due:
        if flow_id not in batched:
            _enqueue(trigger_id)
    return {"requeued": len(due), "recovered": recovered}
