"""Reads: what entry points show of the rows."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import (
    BigIntegerField, Count, Exists, Field, Model, OuterRef, Q, QuerySet, Subquery, Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import ExternalClientApp, Flow, FlowInput, Org, Trigger, credential_version


def trigger_as_dict(trigger: Trigger) -> dict[str, Any]:
    error = None
    if trigger.error_code or trigger.error_message:
        error = {"code": trigger.error_code, "message": trigger.error_message, "hint": trigger.hint}
    return {
        "id": trigger.pk,
        "status": trigger.status,
        "attempts": trigger.attempts,
        "outputs": trigger.outputs,
        "error": error,
    }


def _input_value_match(q: str) -> Q:
    """Triggers with any input equal to `q` (an email, a phone number, an IndividualId)."""
    names = set(FlowInput.objects.values_list("name", flat=True).distinct())
    values = {q, q.lower()}
    match = Q(pk__in=[])
    for name in names:
        for value in values:
            if connection.vendor == "postgresql":
                match |= Q(inputs__contains={name: value})  # @> containment: served by a GIN index
            else:
                match |= Q(**{f"inputs__{name}": value})
    return match


def trigger_filter(params: Mapping[str, str]) -> QuerySet[Trigger]:
    """The console's filter (TriggerFilterForm.params), newest first. Also replayed by re-send jobs."""
    triggers = Trigger.objects.select_related("flow__org", "actor")
    if status := params.get("status"):
        triggers = triggers.filter(status=status)
    if org := params.get("org"):
        triggers = triggers.filter(flow__org__slug=org)
    if flow := params.get("flow"):
        triggers = triggers.filter(flow_id=int(flow))
    if source := params.get("source"):
        triggers = triggers.filter(source=source)
    if error_code := params.get("error_code"):
        triggers = triggers.filter(error_code=error_code)
    if date_from := params.get("date_from"):
        start = _day_start(date_from)
        triggers = triggers.filter(created_at__gte=start, pk__gt=_ids_created_before(start))
    if date_to := params.get("date_to"):
        end = _day_start(date_to) + dt.timedelta(days=1)
        triggers = triggers.filter(created_at__lt=end, pk__lt=_ids_created_from(end))
    if since := params.get("since"):  # an instant (the dashboard's "last 24 hours" links carry one)
        start = parse_since(since)
        triggers = triggers.filter(created_at__gte=start, pk__gt=_ids_created_before(start))
    if params.get("resent") == "no":
        triggers = triggers.filter(~Exists(newer_in_chain()))
    if q := (params.get("q") or "").strip():
        match = _input_value_match(q)
        if q.isascii() and q.isdigit() and len(q) < 19:
            match |= Q(pk=int(q))
        triggers = triggers.filter(match)
    return triggers.order_by("-id")


# Ids rise with created_at (auto_now_add); the slack covers rows committed slightly out of order.
ID_ORDER_SLACK = dt.timedelta(minutes=10)


def _ids_created_before(moment: dt.datetime) -> Coalesce:
    """An id every trigger created at or after `moment` exceeds. A date range then walks the primary key from
    there instead of from the newest trigger (1.3 s → 1 ms at a million triggers for a day long past)."""
    older = Trigger.objects.filter(created_at__lt=moment - ID_ORDER_SLACK).order_by("-created_at").values("pk")[:1]
    return Coalesce(Subquery(older), Value(0), output_field=BigIntegerField())


def _ids_created_from(moment: dt.datetime) -> Coalesce:
    """An id every trigger created before `moment` stays under."""
    newer = Trigger.objects.filter(created_at__gte=moment + ID_ORDER_SLACK).order_by("created_at").values("pk")[:1]
    return Coalesce(Subquery(newer), Value(2**63 - 1), output_field=BigIntegerField())


SINCE_FORMAT = "%Y-%m-%dT%H:%M"  # the filter's `since` as a datetime-local input takes it: local time, no offset


def parse_since(value: str) -> dt.datetime:
    """The filter's `since` (ISO 8601; without an offset, in the current time zone)."""
    moment = dt.datetime.fromisoformat(value)
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def newer_in_chain() -> QuerySet[Trigger]:
    """For a subquery on triggers: the newer triggers of the outer trigger's chain. With one, the trigger was
    re-sent (the list marks it "re-sent as #N"); a chain's newest trigger has none. Served by trigger_origin."""
    return Trigger.objects.filter(origin_id=Coalesce(OuterRef("origin_id"), OuterRef("pk")), pk__gt=OuterRef("pk"))


def _day_start(day: str) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(dt.date.fromisoformat(day), dt.time.min))


def trigger_page(triggers: QuerySet[Trigger], *, before: int | None, size: int = 50
                 ) -> tuple[list[Trigger], int | None]:
    """One page by keyset (ids below `before`), and the cursor of the next page: no COUNT(*) on large tables."""
    if before:
        triggers = triggers.filter(pk__lt=before)
    rows = list(triggers[: size + 1])
    return rows[:size], rows[size - 1].pk if len(rows) > size else None


# Still on its way to Salesforce: re-sending its chain now could reach the customer twice if it succeeds.
IN_FLIGHT = (*Trigger.WAITING, Trigger.Status.SENDING)


@dataclass(frozen=True)
class ChainState:
    """What a re-send needs to know of one chain (an original trigger and every re-send descending from it)."""

    origin_id: int
    newest: tuple[int, str]  # (id, status) of the chain's newest trigger
    delivered: tuple[tuple[int, str], ...] = ()  # (id, status) of its succeeded or unknown triggers, newest first
    in_flight: tuple[int, ...] = ()  # ids of its triggers still on their way, newest first


def chain_states(origin_ids: Collection[int]) -> dict[int, ChainState]:
    """The chains of `origin_ids` (chain_origin_id values) in one query, keyed by origin id."""
    members: dict[int, list[tuple[int, str]]] = {}
    rows = (Trigger.objects.filter(Q(pk__in=origin_ids) | Q(origin_id__in=origin_ids))
            .order_by("-pk").values_list("pk", "origin_id", "status"))
    for pk, origin_id, status in rows:
        members.setdefault(origin_id or pk, []).append((pk, status))
    return {
        origin_id: ChainState(
            origin_id=origin_id, newest=chain[0],
            delivered=tuple((pk, status) for pk, status in chain if status in Trigger.DELIVERED),
            in_flight=tuple(pk for pk, status in chain if status in IN_FLIGHT),
        )
        for origin_id, chain in members.items()
    }


def chain_members(origin_id: int) -> list[Trigger]:
    """Every trigger of one chain, oldest first."""
    return list(Trigger.objects.filter(Q(pk=origin_id) | Q(origin_id=origin_id))
                .select_related("actor", "delivered_by").order_by("pk"))


@dataclass(frozen=True)
class ChainCounts:
    """What a re-send of many triggers would do, for its confirmation."""

    triggers: int
    chains: int
    delivered: int  # chains with a succeeded or unknown trigger and none on its way: re-sent only if confirmed
    in_flight: int  # chains with a trigger on its way: never re-sent

    @property
    def resendable(self) -> int:
        """Chains re-sent unless the delivered ones are included."""
        return self.chains - self.delivered - self.in_flight


def chain_counts(triggers: QuerySet[Trigger]) -> ChainCounts:
    """Counts the chains of `triggers` (any queryset: a filter, a selection) in four queries, whatever its size."""
    triggers = triggers.order_by()
    chain = Coalesce("origin_id", "pk")
    chain_ids = triggers.annotate(chain_origin=chain).values("chain_origin")
    totals = triggers.aggregate(triggers=Count("pk"), chains=Count(chain, distinct=True))
    watched = (*Trigger.DELIVERED, *IN_FLIGHT)
    # Two reads rather than one OR: each is served by an index (the primary key; the origin's partial index).
    rows = [*Trigger.objects.filter(pk__in=chain_ids, status__in=watched).values_list("pk", "status"),
            *Trigger.objects.filter(origin_id__in=chain_ids, status__in=watched)
            .values_list("origin_id", "status").distinct()]
    in_flight = {origin for origin, status in rows if status in IN_FLIGHT}
    delivered = {origin for origin, status in rows if status in Trigger.DELIVERED} - in_flight
    return ChainCounts(triggers=totals["triggers"], chains=totals["chains"], delivered=len(delivered),
                       in_flight=len(in_flight))


def flow_stats_last_day(*, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Per flow over the last 24 hours: counts by status (unknown among them), success rate of the finished ones,
    median time to Salesforce."""
    since = (now or timezone.now()) - dt.timedelta(hours=24)
    recent = Trigger.objects.filter(created_at__gte=since)
    counts: dict[int, dict[str, int]] = {}
    for row in recent.values("flow_id", "status").annotate(n=Count("id")):
        counts.setdefault(row["flow_id"], {})[row["status"]] = row["n"]
    flows = Flow.objects.select_related("org").in_bulk(list(counts))
    stats = []
    for flow_id, by_status in counts.items():
        # Unknown is final too: a flow whose answers get lost does not look better for it.
        finished = sum(by_status.get(status, 0) for status in Trigger.FINAL)
        durations = [
            (finished_at - created_at).total_seconds()
            for created_at, finished_at in recent.filter(flow_id=flow_id, status=Trigger.Status.SUCCEEDED)
            .order_by("-id").values_list("created_at", "finished_at")[:MEDIAN_SAMPLE]
        ]
        stats.append({
            "flow": flows[flow_id],
            "by_status": by_status,
            "total": sum(by_status.values()),
            "success_rate": by_status.get(Trigger.Status.SUCCEEDED, 0) / finished if finished else None,
            "median_seconds": statistics.median(durations) if durations else None,
        })
    return sorted(stats, key=lambda s: (str(s["flow"].org), s["flow"].api_name))


MEDIAN_SAMPLE = 2000


def trigger_for_dispatch(trigger_id: int) -> Trigger:
    """The trigger with its flow and org, and its org's active External Client App's credential version as
    `credential_version` (None without one): the token's cache key, without reading the app. One query.

    The hottest read of all (once per dispatch), so its SQL is built once per process (`_CompiledRead`): the same
    query through the ORM cost 1.3 ms of CPU to compile and load, this 0.2 ms (`tests/flows/test_selectors.py`
    holds it to the ORM's answer).
    """
    found = _dispatch_read().fetch([trigger_id])
    if found is None:
        raise Trigger.DoesNotExist(f"Trigger {trigger_id} does not exist.")
    (trigger, flow, org), (app_pk, app_created_at, app_rotated_at) = found
    Trigger.flow.field.set_cached_value(trigger, flow)
    Flow.org.field.set_cached_value(flow, org)
    trigger.credential_version = (
        credential_version(app_pk, app_created_at, app_rotated_at) if app_pk is not None else None
    )
    return trigger


def flow_with_org(*, org_slug: str, api_name: str) -> Flow | None:
    """The flow named `api_name` in the org `org_slug`, its org loaded: once per API request, so compiled once
    (0.9 → 0.2 ms of CPU, as trigger_for_dispatch)."""
    found = _flow_read().fetch([org_slug, api_name])
    if found is None:
        return None
    (flow, org), _ = found
    Flow.org.field.set_cached_value(flow, org)
    return flow


class _CompiledRead:
    """One SELECT of several models' rows joined (and a few more columns), built once per process and database
    vendor from the models' fields; its rows go through the fields' own converters, as the ORM's would. For the
    reads made once per trigger, where compiling the ORM's query cost several times running it."""

    def __init__(self, tables: Sequence[tuple[type[Model], str]], extra: Sequence[tuple[str, Field]],
                 from_where: str) -> None:
        self.tables, self.extra, self.from_where = tables, extra, from_where
        self._compiled: dict[str, tuple[str, list[tuple[type[Model], list[str]]], list[list[Any]]]] = {}

    def _compile(self) -> tuple[str, list[tuple[type[Model], list[str]]], list[list[Any]]]:
        compiled = self._compiled.get(connection.vendor)
        if compiled:
            return compiled
        quote = connection.ops.quote_name
        columns: list[str] = []
        models: list[tuple[type[Model], list[str]]] = []
        converters: list[list[Any]] = []

        def add(alias: str, fields: Sequence[Field]) -> None:
            for field in fields:
                expression = field.get_col(alias)
                columns.append(f"{alias}.{quote(field.column)}")
                converters.append([(convert, expression) for convert in
                                   connection.ops.get_db_converters(expression) + field.get_db_converters(connection)])

        for model, alias in self.tables:
            add(alias, model._meta.concrete_fields)
            models.append((model, [field.attname for field in model._meta.concrete_fields]))
        for alias, field in self.extra:
            add(alias, [field])
        tables = {model: quote(model._meta.db_table) for model, _ in self.tables}
        tables.update({field.model: quote(field.model._meta.db_table) for _, field in self.extra})
        sql = f"SELECT {', '.join(columns)} " + self.from_where.format(**{m.__name__: t for m, t in tables.items()})
        compiled = self._compiled[connection.vendor] = (sql, models, converters)
        return compiled

    def fetch(self, params: list[Any]) -> tuple[list[Model], list[Any]] | None:
        """The first row's model instances, and its extra values; None without a row."""
        sql, models, converters = self._compile()
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        values = []
        for value, column_converters in zip(row, converters):
            for convert, expression in column_converters:
                value = convert(value, expression, connection)
            values.append(value)
        objects, offset = [], 0
        for model, names in models:
            objects.append(model.from_db(connection.alias, names, values[offset:offset + len(names)]))
            offset += len(names)
        return objects, values[offset:]


@cache
def _dispatch_read() -> _CompiledRead:
    app = ExternalClientApp._meta
    return _CompiledRead(
        [(Trigger, "t"), (Flow, "f"), (Org, "o")],
        [("a", app.get_field("id")), ("a", app.get_field("created_at")), ("a", app.get_field("rotated_at"))],
        "FROM {Trigger} t JOIN {Flow} f ON f.id = t.flow_id JOIN {Org} o ON o.id = f.org_id "
        "LEFT JOIN {ExternalClientApp} a ON a.org_id = o.id AND a.is_active WHERE t.id = %s",
    )


@cache
def _flow_read() -> _CompiledRead:
    return _CompiledRead([(Flow, "f"), (Org, "o")], [],
                         "FROM {Flow} f JOIN {Org} o ON o.id = f.org_id WHERE o.slug = %s AND f.api_name = %s")
