"""The console's dashboard: its reads (what needs a person now; per flow, triggers by outcome and time to Salesforce;
per org, API usage against the daily limit) and its charts.

Charts are inline SVG drawn here, on the server: no JavaScript, no CDN, nothing to load. Each bar or point carries a
<title> (the browser's tooltip: its count or times, its period and the time zone) and each chart a caption with its
totals, which is also its text alternative.

Fast at a million triggers: each window (24 hours per hour, 7 days per 6 hours) is ONE grouped query over every
flow, a range of the created_at index, its totals from the same scan (ROLLUP); not a query per flow or per hour.
The 7-day one (58,000 rows at a million triggers over 4 months, half of it their percentiles) is shared by every
viewer for 2 minutes; what needs a person, the 24 hours and API usage are read on every view.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from html import escape  # the standard library's: plain strings, cheaper than Django's on a page of charts
from urllib.parse import urlencode

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, DateTimeField, F, Func, IntegerField, Max, Value
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from .models import Flow, Org, OrgUsageSample, Trigger
from .selectors import SINCE_FORMAT, trigger_filter
from .webhooks.models import WebhookDelivery

S = Trigger.Status
STATUSES = tuple(S.values)


def clock() -> dt.datetime:
    """The dashboard's now. A function of its own so that bench/scale.py can set it to its data's newest trigger
    (a loaded bench database is reused for days)."""
    return timezone.now()


# --- windows ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A span ending now, cut into buckets aligned on the local clock (whole hours; 00:00, 06:00, ... for 6
    hours). The first bucket starts before `since` and the last one ends after `now`: both are partial, and
    their tooltips say so."""

    key: str
    title: str  # "last 24 hours"
    per: str  # "per hour"
    now: dt.datetime
    since: dt.datetime  # now - span: the window's exact start
    origin: dt.datetime  # where bucket 0 starts: `since` floored to the bucket width on the local clock
    width: dt.timedelta
    buckets: int
    tz: dt.tzinfo  # the current time zone, looked up once (Django's lookup is slow per call)

    @property
    def until(self) -> dt.datetime:
        """The end of the last bucket (after now): later rows (a clock ahead) are left out."""
        return self.origin + self.width * self.buckets

    def start(self, index: int) -> dt.datetime:
        return self.origin + self.width * index

    def local(self, moment: dt.datetime) -> dt.datetime:
        return moment.astimezone(self.tz)

    @cached_property
    def periods(self) -> list[str]:
        """Each bucket's period in words, local time, clipped to the window: 'Tue 1 Dec 14:00–15:00 UTC'. Once per
        window: every chart of the page shares them."""
        periods = []
        for index in range(self.buckets):
            start = self.local(max(self.start(index), self.since))
            end = self.local(min(self.start(index + 1), self.now))
            so_far = " (so far)" if self.start(index + 1) > self.now else ""
            periods.append(f"{start:%a} {start.day} {start:%b %H:%M}–{end:%H:%M} {start.tzname()}{so_far}")
        return periods

    @cached_property
    def ticks(self) -> list[tuple[int, str]]:
        """(bucket index, label) of the x axis: every 3 hours over a day, each local midnight over longer spans."""
        daily = self.width * self.buckets > dt.timedelta(hours=36)
        ticks = []
        for index in range(self.buckets):
            start = self.local(self.start(index))
            if start.minute == 0 and daily and start.hour == 0:
                ticks.append((index, f"{start:%a} {start.day}"))
            elif start.minute == 0 and not daily and start.hour % 3 == 0:
                ticks.append((index, f"{start:%H:%M}"))
        return ticks

    @property
    def daily(self) -> bool:
        return self.width * self.buckets > dt.timedelta(hours=36)

    @property
    def time_zone(self) -> str:
        return self.local(self.now).tzname() or str(self.tz)


def make_window(now: dt.datetime, *, key: str, span: dt.timedelta, width_hours: int, title: str, per: str) -> Window:
    since = now - span
    tz = timezone.get_current_timezone()
    local = since.astimezone(tz).replace(minute=0, second=0, microsecond=0)
    # Aligned on the local clock, then in UTC: buckets are absolute (after a change to or from summer time their
    # local labels move by an hour), as the SQL that fills them counts.
    origin = (local - dt.timedelta(hours=local.hour % width_hours)).astimezone(dt.timezone.utc)
    width = dt.timedelta(hours=width_hours)
    buckets = max(1, math.ceil((now - origin) / width))
    return Window(key=key, title=title, per=per, now=now, since=since, origin=origin, width=width, buckets=buckets,
                  tz=tz)


def day_window(now: dt.datetime) -> Window:
    return make_window(now, key="24h", span=dt.timedelta(hours=24), width_hours=1, title="last 24 hours",
                       per="per hour")


def week_window(now: dt.datetime, *, width_hours: int = 6) -> Window:
    return make_window(now, key="7d", span=dt.timedelta(days=7), width_hours=width_hours, title="last 7 days",
                       per="per hour" if width_hours == 1 else f"per {width_hours} hours")


class BucketIndex(Func):
    """Which bucket of a window a moment falls in: floor((moment - origin) / width), an integer."""

    output_field = IntegerField()

    def __init__(self, moment: str, window: Window) -> None:
        super().__init__(F(moment), Value(window.origin, output_field=DateTimeField()),
                         Value(window.width.total_seconds()))

    def _parts(self, compiler, connection) -> tuple[list[str], list]:  # type: ignore[no-untyped-def]
        sql, params = [], []
        for expression in self.get_source_expressions():
            part, part_params = compiler.compile(expression)
            sql.append(part)
            params.extend(part_params)
        return sql, params

    def as_sql(self, compiler, connection, **extra):  # type: ignore[no-untyped-def,override]
        # SQLite (the local demo): datetimes are UTC text; rows are filtered to the window, so never negative.
        (moment, origin, width), params = self._parts(compiler, connection)
        return f"CAST((julianday({moment}) - julianday({origin})) * 86400.0 / {width} AS INTEGER)", params

    def as_postgresql(self, compiler, connection, **extra):  # type: ignore[no-untyped-def]
        (moment, origin, width), params = self._parts(compiler, connection)
        return (f"FLOOR(EXTRACT(EPOCH FROM ({moment} - {origin}::timestamptz))::float8 / {width}::float8)::integer",
                params)


# --- triggers per flow --------------------------------------------------------------------------------------

# The charts' series, stacked bottom up: (key, label, colour, the statuses counted). Colours as the console's.
SERIES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("succeeded", "Succeeded", "#2e7d32", (S.SUCCEEDED,)),
    ("failed", "Failed", "#c62828", (S.FAILED,)),
    ("unknown", "Unknown", "#6a1b9a", (S.UNKNOWN,)),
    ("retrying", "Retrying", "#ef6c00", (S.RETRYING,)),
    ("in_flight", "Queued or sending", "#1565c0", (S.QUEUED, S.SENDING)),
)


@dataclass
class FlowWindow:
    """One flow over one window: counts by status per bucket and in all; time to Salesforce (created → succeeded,
    retries included) as p50 and p95 per bucket and over the window."""

    buckets: int
    counts: dict[str, list[int]] = field(default_factory=dict)  # status -> per bucket
    by_status: dict[str, int] = field(default_factory=dict)  # the whole window
    p50: list[float | None] = field(default_factory=list)
    p95: list[float | None] = field(default_factory=list)
    p50_all: float | None = None
    p95_all: float | None = None

    def __post_init__(self) -> None:
        self.counts = {status: [0] * self.buckets for status in STATUSES}
        self.p50, self.p95 = [None] * self.buckets, [None] * self.buckets

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def success_rate(self) -> float | None:
        # Unknown is final too: a flow whose answers get lost does not look better for it.
        finished = sum(self.by_status.get(status, 0) for status in Trigger.FINAL)
        return self.by_status.get(S.SUCCEEDED, 0) / finished if finished else None

    def series(self, statuses: Iterable[str]) -> list[int]:
        return [sum(values) for values in zip(*(self.counts[status] for status in statuses))]


# One scan of the window's created_at range: per flow, status and bucket, and (ROLLUP) per flow and status over the
# whole window, whose bucket is NULL. date_bin is date_trunc for any width (6 hours) from any origin (the local
# clock's); interval arithmetic, not EXTRACT's numeric, keeps it at a third less CPU. Percentiles of succeeded
# triggers only (the others' durations are NULL, skipped by the FILTER).
_WINDOW_SQL = """
SELECT flow_id, status, bucket, COUNT(*),
       percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY took) FILTER (WHERE took IS NOT NULL)
FROM (
    SELECT flow_id, status, date_bin(%(width)s::interval, created_at, %(origin)s::timestamptz) AS bucket,
           CASE WHEN status = 'succeeded' THEN finished_at - created_at END AS took
    FROM {table}
    WHERE created_at >= %(since)s::timestamptz AND created_at < %(until)s::timestamptz
) t
GROUP BY flow_id, status, ROLLUP (bucket)
"""

Row = tuple[int, str, int | None, int, Sequence[float] | None]  # flow, status, bucket (None: all), n, [p50, p95]


def _window_rows_sql(window: Window) -> list[Row]:
    with connection.cursor() as cursor:
        cursor.execute(_WINDOW_SQL.format(table=connection.ops.quote_name(Trigger._meta.db_table)), {
            "origin": window.origin, "width": window.width, "since": window.since, "until": window.until,
        })
        return [(flow_id, status, None if bucket is None else (bucket - window.origin) // window.width, n,
                 None if took is None else [part.total_seconds() for part in took])
                for flow_id, status, bucket, n, took in cursor.fetchall()]


def percentile(ordered: Sequence[float], p: float) -> float:
    """As PostgreSQL's percentile_cont: linear between the two nearest of the sorted values."""
    position = p * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _window_rows_python(window: Window) -> list[Row]:
    """The same rows as _WINDOW_SQL, computed here: for SQLite (the local demo), which has no percentile_cont."""
    counts: dict[tuple[int, str, int | None], int] = {}
    seconds: dict[tuple[int, str, int | None], list[float]] = {}
    rows = (Trigger.objects.filter(created_at__gte=window.since, created_at__lt=window.until)
            .values_list("flow_id", "status", "created_at", "finished_at"))
    for flow_id, status, created_at, finished_at in rows.iterator(chunk_size=5000):
        bucket = math.floor((created_at - window.origin) / window.width)
        for key in ((flow_id, status, bucket), (flow_id, status, None)):
            counts[key] = counts.get(key, 0) + 1
            if status == S.SUCCEEDED and finished_at is not None:
                seconds.setdefault(key, []).append((finished_at - created_at).total_seconds())
    result: list[Row] = []
    for key, n in counts.items():
        values = sorted(seconds.get(key, []))
        result.append((*key, n, [percentile(values, 0.5), percentile(values, 0.95)] if values else None))
    return result


def window_rows(window: Window) -> list[Row]:
    return _window_rows_sql(window) if connection.vendor == "postgresql" else _window_rows_python(window)


def cached_window_rows(window: Window, seconds: int) -> tuple[list[Row], dt.datetime]:
    """window_rows, kept `seconds` in the shared cache for every viewer, and when they were read. For the 7-day
    window: its percentiles cost most of the page at a million triggers, and a trend need not be to the second.
    A new bucket (every 6 hours) reads them afresh. `seconds` 0: read every time."""
    if seconds <= 0:
        return window_rows(window), window.now
    key = (f"flowgate:dashboard:{connection.settings_dict['NAME']}:{window.key}:{window.width.total_seconds():.0f}:"
           f"{window.origin.timestamp():.0f}:{window.buckets}")
    found = cache.get(key)
    if found is None:
        found = (window_rows(window), window.now)
        cache.set(key, found, seconds)
    return found


def flow_windows(window: Window, rows: Iterable[Row] | None = None) -> dict[int, FlowWindow]:
    """Every flow with a trigger in the window, by flow id (from `rows` when given: cached_window_rows')."""
    stats: dict[int, FlowWindow] = {}
    for flow_id, status, bucket, n, percentiles in window_rows(window) if rows is None else rows:
        flow = stats.setdefault(flow_id, FlowWindow(window.buckets))
        if bucket is None:
            flow.by_status[status] = n
            if status == S.SUCCEEDED and percentiles:
                flow.p50_all, flow.p95_all = percentiles
        else:
            flow.counts[status][bucket] = n
            if status == S.SUCCEEDED and percentiles:
                flow.p50[bucket], flow.p95[bucket] = percentiles
    return stats


# --- what needs a person now --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attention:
    key: str
    label: str
    count: int
    url: str
    help: str


def failed_params(now: dt.datetime) -> dict[str, str]:
    """The console filter of 'failed in the last 24 hours, not re-sent since': the count and its link are the same
    filter, so following the link lists exactly what was counted. Local time to the minute, as the list's Since
    field shows it (a datetime-local input takes no offset): the filter stays when the list is filtered again."""
    since = timezone.localtime(now - dt.timedelta(hours=24))
    return {"status": S.FAILED, "since": since.strftime(SINCE_FORMAT), "resent": "no"}


# Whatever their age: an unknown outcome waits for a person (Mark as delivered, which makes it succeeded, or Re-send).
UNKNOWN_PARAMS = {"status": S.UNKNOWN, "resent": "no"}


def attention(now: dt.datetime, *, deliveries: bool, orgs: Sequence[Org]) -> list[Attention]:
    """Counts of what needs a person now, each with a link to the console filtered to exactly those."""
    triggers = reverse("console:triggers")
    failed = failed_params(now)
    items = [
        Attention("failed", "Failed in the last 24 hours, not re-sent", trigger_filter(failed).count(),
                  f"{triggers}?{urlencode(failed)}",
                  "Each is the newest trigger of its chain: re-send it, or leave it if it must not reach the "
                  "customer any more."),
        Attention("unknown", "Unknown outcomes to decide", trigger_filter(UNKNOWN_PARAMS).count(),
                  f"{triggers}?{urlencode(UNKNOWN_PARAMS)}",
                  "Whatever their age: Salesforce may have run them. Check, then Mark as delivered or Re-send."),
    ]
    if deliveries:
        held = dict(WebhookDelivery.objects.filter(outcome=WebhookDelivery.Outcome.HELD)
                    .values_list("held_for").annotate(n=Count("id")).order_by())
        # Only those held for an inactive flow or org wait for a person; a pause's are replayed when it ends.
        paused = held.get(WebhookDelivery.HeldFor.PAUSED, 0)
        inactive = sum(held.values()) - paused
        items.append(Attention(
            "held", "Held webhook deliveries", sum(held.values()),
            f"{reverse('console:deliveries')}?{urlencode({'outcome': WebhookDelivery.Outcome.HELD})}",
            " ".join(([f"{inactive} for an inactive flow or org: replay them once it is active again."]
                      if inactive else [])
                     + ([f"{paused} for a paused org: replayed by themselves when the pause ends."] if paused
                        else []))))
    paused_orgs = [org for org in orgs if org.paused_until and org.paused_until > now]
    items.append(Attention("paused", "Orgs paused (daily API limit)", len(paused_orgs), "#orgs",
                           "No call to a paused org until its pause ends; its triggers wait."))
    return items


# --- API usage per org --------------------------------------------------------------------------------------


@dataclass
class OrgUsage:
    org: Org
    used: list[int | None]  # the highest usage seen per bucket
    limit: list[int | None]  # the daily limit then

    @property
    def seen(self) -> bool:
        return any(value is not None for value in self.used)


def org_usage(window: Window, orgs: Sequence[Org]) -> list[OrgUsage]:
    """Per org, the peak API usage per bucket and the limit then: one grouped query, by the (org, seen_at) index."""
    usage = {org.pk: OrgUsage(org, [None] * window.buckets, [None] * window.buckets) for org in orgs}
    rows = (OrgUsageSample.objects
            .filter(org_id__in=list(usage), seen_at__gte=window.since, seen_at__lt=window.until)
            .annotate(bucket=BucketIndex("seen_at", window)).values("org_id", "bucket")
            .annotate(peak=Max("used"), limit=Max("max")).order_by())
    for row in rows:
        usage[row["org_id"]].used[row["bucket"]] = row["peak"]
        usage[row["org_id"]].limit[row["bucket"]] = row["limit"]
    return list(usage.values())


# --- the page -----------------------------------------------------------------------------------------------


@dataclass
class FlowPanel:
    flow: Flow
    day: FlowWindow
    week: FlowWindow
    charts: list[SafeString]


@dataclass
class OrgPanel:
    org: Org
    paused: bool
    chart: SafeString | None


@dataclass
class Dashboard:
    now: dt.datetime
    day: Window
    week: Window
    attention: list[Attention]
    table: list[dict]  # the last 24 hours per flow, by status (the page's first table)
    flows: list[FlowPanel]
    orgs: list[OrgPanel]
    time_zone: str
    week_read_at: dt.datetime  # when the 7-day charts' counts were read (cached up to WEEK_CACHE_SECONDS)


# The 7-day charts are read at most this often; the rest of the page (what needs a person, the 24 hours, API usage)
# on every view.
WEEK_CACHE_SECONDS = 120


def dashboard_page(now: dt.datetime, *, deliveries: bool) -> Dashboard:
    """Everything the page shows. `deliveries`: whether the viewer may see webhook deliveries."""
    day, week = day_window(now), week_window(now)
    orgs = list(Org.objects.filter(is_active=True))
    week_rows, week_read_at = cached_window_rows(week, WEEK_CACHE_SECONDS)
    by_day, by_week = flow_windows(day), flow_windows(week, week_rows)
    flows = Flow.objects.select_related("org").in_bulk(list(by_week | by_day))
    order = sorted(flows.values(), key=lambda f: (str(f.org), f.api_name))
    empty_day, empty_week = FlowWindow(day.buckets), FlowWindow(week.buckets)
    panels = []
    for flow in order:
        flow_day, flow_week = by_day.get(flow.pk, empty_day), by_week.get(flow.pk, empty_week)
        panels.append(FlowPanel(flow, flow_day, flow_week, [
            counts_chart(day, flow_day, f"flow-{flow.pk}-day"), counts_chart(week, flow_week, f"flow-{flow.pk}-week"),
            latency_chart(day, flow_day, f"flow-{flow.pk}-day-latency"),
            latency_chart(week, flow_week, f"flow-{flow.pk}-week-latency"),
        ]))
    table = [{"flow": panel.flow, "by_status": panel.day.by_status, "total": panel.day.total,
              "success_rate": panel.day.success_rate, "p50": panel.day.p50_all, "p95": panel.day.p95_all}
             for panel in panels if panel.day.total]
    usage_window = week_window(now, width_hours=1)
    org_panels = [OrgPanel(usage.org, bool(usage.org.paused_until and usage.org.paused_until > now),
                           usage_chart(usage_window, usage, f"org-{usage.org.pk}-usage") if usage.seen else None)
                  for usage in org_usage(usage_window, orgs)]
    return Dashboard(now=now, day=day, week=week, attention=attention(now, deliveries=deliveries, orgs=orgs),
                     table=table, flows=panels, orgs=org_panels, time_zone=day.time_zone, week_read_at=week_read_at)


# --- charts -------------------------------------------------------------------------------------------------

WIDTH = 570  # two charts side by side fit the console at 1,280 px
LEFT, RIGHT, TOP, BOTTOM = 48, 10, 26, 38
LABEL_EM = 6.2  # the width of a character of the charts' 11 px labels, about


def seconds_text(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def number_text(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:,.0f}" if value == int(value) else f"{value:g}"


def scale(peak: float, *, integer: bool) -> tuple[float, list[float]]:
    """A round top for the y axis and its gridlines (3 to 5 of them, at 1, 2, 2.5 or 5 × a power of ten)."""
    peak = peak if peak > 0 else 1
    raw = peak / 4
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    if integer:
        step = max(1, math.ceil(step))
    top = step * math.ceil(peak / step - 1e-9)
    return top, [step * i for i in range(round(top / step) + 1)]


class _Svg:
    """One chart's SVG: every text escaped here, numbers rounded to a tenth of a pixel."""

    def __init__(self, height: int, chart_id: str, title: str) -> None:
        self.height, self.id = height, chart_id
        self.parts = [
            f'<svg class="chart-svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" '
            f'aria-labelledby="{chart_id}-title {chart_id}-caption" xmlns="http://www.w3.org/2000/svg">'
            f'<title id="{chart_id}-title">{escape(title)}</title>'
        ]

    @property
    def bottom(self) -> float:
        return self.height - BOTTOM

    def add(self, markup: str) -> None:
        self.parts.append(markup)

    def text(self, x: float, y: float, text: str, *, anchor: str = "start", cls: str = "chart-label") -> None:
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="{cls}">{escape(text)}</text>')

    def legend(self, items: Sequence[tuple[str, str, str]]) -> None:
        """(label, colour, kind) left to right at the top; kind 'box', 'line' or 'dash'."""
        x = LEFT
        for label, colour, kind in items:
            if kind == "box":
                self.add(f'<rect x="{x}" y="7" width="10" height="10" fill="{colour}"/>')
            else:
                dash = ' stroke-dasharray="5 3"' if kind == "dash" else ""
                self.add(f'<line x1="{x}" y1="12" x2="{x + 14}" y2="12" stroke="{colour}" stroke-width="2"{dash}/>')
            self.text(x + (14 if kind == "box" else 18), 16, label)
            x += (14 if kind == "box" else 18) + LABEL_EM * len(label) + 14

    def y_axis(self, top: float, ticks: Sequence[float], label: Callable[[float], str]) -> Callable[[float], float]:
        """Gridlines with their labels; returns value → y."""
        height = self.bottom - TOP

        def y(value: float) -> float:
            return self.bottom - height * max(value, 0) / top

        for tick in ticks:
            self.add(f'<line x1="{LEFT}" y1="{y(tick):.1f}" x2="{WIDTH - RIGHT}" y2="{y(tick):.1f}" '
                     f'class="chart-grid"/>')
            self.text(LEFT - 5, y(tick) + 4, label(tick), anchor="end")
        return y

    def x_axis(self, window: Window) -> Callable[[float], float]:
        """The window's ticks and the axis title with the time zone; returns bucket index (fractional) → x."""
        span = (WIDTH - RIGHT - LEFT) / window.buckets

        def x(index: float) -> float:
            return LEFT + span * index

        for index, label in window.ticks:
            self.add(f'<line x1="{x(index):.1f}" y1="{self.bottom}" x2="{x(index):.1f}" y2="{self.bottom + 4}" '
                     f'class="chart-axis"/>')
            # A day's label starts at its midnight, an hour's is centred on it; one that would run off the chart's
            # right edge (the last midnight, close to now) is left out, its tick kept.
            left = x(index) + 2 if window.daily else x(index) - LABEL_EM * len(label) / 2
            if left + LABEL_EM * len(label) > WIDTH - 1:
                continue
            self.text(left, self.bottom + 15, label)
        axis_title = f"{window.per.capitalize()} ({window.time_zone})"
        self.add(f'<line x1="{LEFT}" y1="{self.bottom}" x2="{WIDTH - RIGHT}" y2="{self.bottom}" class="chart-axis"/>')
        self.text((LEFT + WIDTH - RIGHT) / 2, self.height - 6, axis_title, anchor="middle", cls="chart-axis-title")
        return x

    def figure(self, caption: str) -> SafeString:
        self.add("</svg>")
        return mark_safe(f'<figure class="chart" id="{self.id}">{"".join(self.parts)}'
                         f'<figcaption id="{self.id}-caption">{escape(caption)}</figcaption></figure>')


def counts_chart(window: Window, stats: FlowWindow, chart_id: str) -> SafeString:
    """Stacked bars: triggers per bucket by outcome, with a legend, axes and a tooltip per bar."""
    title = f"Triggers {window.per}, {window.title}, by outcome"
    svg = _Svg(210, chart_id, title)
    series = [(key, label, colour, stats.series(statuses)) for key, label, colour, statuses in SERIES]
    totals = [sum(values) for *_, values in series]
    svg.legend([(label, colour, "box") for _, label, colour, _ in series])
    stacked = [sum(values) for values in zip(*(values for *_, values in series))]
    top, ticks = scale(max(stacked, default=0), integer=True)
    y = svg.y_axis(top, ticks, number_text)
    x = svg.x_axis(window)
    span = x(1) - x(0)
    bar = max(1.0, span * 0.78)
    for index in range(window.buckets):
        parts = [f"{values[index]:,} {label.lower()}" for _, label, _, values in series if values[index]]
        tip = f"{window.periods[index]}: {stacked[index]:,} trigger{'s' if stacked[index] != 1 else ''}" + (
            f" ({', '.join(parts)})" if parts else "")
        left = x(index) + (span - bar) / 2
        svg.add(f'<g class="chart-bar"><title>{escape(tip)}</title>'
                f'<rect x="{x(index):.1f}" y="{TOP}" width="{span:.1f}" height="{svg.bottom - TOP}" '
                f'class="chart-hit"/>')
        base = 0
        for _, _, colour, values in series:
            if values[index]:
                svg.add(f'<rect x="{left:.1f}" y="{y(base + values[index]):.1f}" width="{bar:.1f}" '
                        f'height="{y(base) - y(base + values[index]):.1f}" fill="{colour}"/>')
                base += values[index]
        svg.add("</g>")
    described = ", ".join(f"{n:,} {label.lower()}" for (_, label, _, _), n in zip(series, totals))
    caption = (f"Triggers {window.per}, {window.title} ({window.time_zone}): {sum(totals):,} in all — "
               f"{described}.")
    return svg.figure(caption)


def _polyline(points: Sequence[tuple[float, float] | None], colour: str, *, dash: bool = False) -> str:
    """Runs of consecutive points as lines; a lone point as a dot (a bucket with no value breaks the line)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for point in points:
        if point is None:
            runs.append([])
        else:
            runs[-1].append(point)
    dasharray = ' stroke-dasharray="5 3"' if dash else ""
    markup = []
    for run in runs:
        if len(run) > 1:
            coordinates = " ".join(f"{px:.1f},{py:.1f}" for px, py in run)
            markup.append(f'<polyline points="{coordinates}" fill="none" stroke="{colour}" stroke-width="2"'
                          f'{dasharray}/>')
        elif run:
            markup.append(f'<circle cx="{run[0][0]:.1f}" cy="{run[0][1]:.1f}" r="2.5" fill="{colour}"/>')
    return "".join(markup)


P50, P95 = "#1565c0", "#ef6c00"


def latency_chart(window: Window, stats: FlowWindow, chart_id: str) -> SafeString:
    """Time to Salesforce per bucket: p50 and p95 lines of the succeeded triggers."""
    title = f"Time to Salesforce {window.per}, {window.title}"
    svg = _Svg(170, chart_id, title)
    svg.legend([("p50", P50, "line"), ("p95", P95, "dash")])
    values = [v for v in (*stats.p50, *stats.p95) if v is not None]
    top, ticks = scale(max(values, default=0), integer=False)
    y = svg.y_axis(top, ticks, seconds_text)
    x = svg.x_axis(window)
    span = x(1) - x(0)
    succeeded = stats.counts[S.SUCCEEDED]
    for index in range(window.buckets):
        if stats.p50[index] is None:
            continue
        tip = (f"{window.periods[index]}: p50 {seconds_text(stats.p50[index])}, p95 {seconds_text(stats.p95[index])}"
               f" ({succeeded[index]:,} succeeded)")
        svg.add(f'<g class="chart-bar"><title>{escape(tip)}</title><rect x="{x(index):.1f}" y="{TOP}" '
                f'width="{span:.1f}" height="{svg.bottom - TOP}" class="chart-hit"/></g>')
    middle = [x(index + 0.5) for index in range(window.buckets)]
    svg.add(_polyline([(middle[i], y(v)) if v is not None else None for i, v in enumerate(stats.p95)], P95,
                      dash=True))
    svg.add(_polyline([(middle[i], y(v)) if v is not None else None for i, v in enumerate(stats.p50)], P50))
    n = stats.by_status.get(S.SUCCEEDED, 0)
    caption = (f"Time to Salesforce (created to succeeded, retries included) {window.per}, {window.title}: "
               + (f"p50 {seconds_text(stats.p50_all)}, p95 {seconds_text(stats.p95_all)} over {n:,} succeeded "
                  f"trigger{'s' if n != 1 else ''}." if n else "no succeeded trigger."))
    return svg.figure(caption)


USED, LIMIT = "#1565c0", "#c62828"


def usage_chart(window: Window, usage: OrgUsage, chart_id: str) -> SafeString:
    """API usage (the peak per bucket) as a line under a dashed line at the daily limit."""
    title = f"API usage against the daily limit, {window.title}, peak {window.per}"
    svg = _Svg(190, chart_id, title)
    svg.legend([("Requests used (24 h rolling)", USED, "line"), ("Daily limit", LIMIT, "dash")])
    seen = [v for v in (*usage.used, *usage.limit) if v is not None]
    top, ticks = scale(max(seen, default=0), integer=True)
    y = svg.y_axis(top, ticks, number_text)
    x = svg.x_axis(window)
    span = x(1) - x(0)
    for index, used in enumerate(usage.used):
        if used is None:
            continue
        limit = usage.limit[index]
        share = f" ({used / limit:.0%})" if limit else ""
        tip = f"{window.periods[index]}: peak {used:,} of {limit or 0:,}{share}"
        svg.add(f'<g class="chart-bar"><title>{escape(tip)}</title><rect x="{x(index):.1f}" y="{TOP}" '
                f'width="{span:.1f}" height="{svg.bottom - TOP}" class="chart-hit"/></g>')
    # The limit as steps (it changes rarely: a new edition, more licences); the usage through each bucket's middle.
    steps: list[tuple[float, float] | None] = []
    for index, limit in enumerate(usage.limit):
        steps.extend([(x(index), y(limit)), (x(index + 1), y(limit))] if limit is not None else [None])
    svg.add(_polyline(steps, LIMIT, dash=True))
    svg.add(_polyline([(x(i + 0.5), y(v)) if v is not None else None for i, v in enumerate(usage.used)], USED))
    highest = max(((v, i) for i, v in enumerate(usage.used) if v is not None), default=None)
    caption = f"API usage, {window.title}, peak {window.per} ({window.time_zone})"
    if highest is not None:
        value, index = highest
        limit = usage.limit[index]
        caption += (f": highest {value:,} of {limit:,} ({value / limit:.0%}), {window.periods[index]}" if limit
                    else f": highest {value:,}, {window.periods[index]}")
    return svg.figure(caption + ".")
