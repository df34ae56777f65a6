"""The dashboard as a support lead's first page (issue 12): what needs a person now, with links that list exactly
those; per flow, triggers per hour (24 hours) and per 6 hours (7 days) by outcome and time to Salesforce, as SVG
charts; per org, API usage against its daily limit from samples written at most once per 5 minutes.

Times are fixed: the dashboard's clock is set to NOW and every trigger gets its created_at and finished_at
explicitly, oldest first (ids rise with created_at, as in production: the console's date filters rely on it)."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.urls import reverse
from django.utils import timezone

from flows import dashboard as board
from flows.models import Flow, Org, OrgUsageSample, Trigger
from flows.retention import org_usage_samples_purge
from flows.retention_tasks import purge_exchanges
from flows.salesforce import SalesforceClient
from flows.webhooks.models import ShopifyWebhook, WebhookDelivery
from tests.conftest import make_flow, make_org

from .conftest import make_trigger, rows

S = Trigger.Status
URL = reverse("console:dashboard")
UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 30, 10, 20, tzinfo=UTC)  # a Monday


def at(flow: Flow, status: str, created: dt.datetime, *, seconds: float | None = None, **fields) -> Trigger:
    """A trigger created at `created`, finished `seconds` later (when given)."""
    trigger = make_trigger(flow, status=status, **fields)
    finished = created + dt.timedelta(seconds=seconds) if seconds is not None else None
    Trigger.objects.filter(pk=trigger.pk).update(created_at=created, finished_at=finished)
    trigger.created_at, trigger.finished_at = created, finished
    return trigger


def ago(**delta: float) -> dt.datetime:
    return NOW - dt.timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    monkeypatch.setattr(board, "clock", lambda: NOW)
    return NOW


# --- who sees it ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["as_bob", "as_alice"])
def test_bob_from_support_and_alice_the_admin_see_the_charts(persona, request, flow, clock):
    at(flow, S.SUCCEEDED, ago(hours=2), seconds=1.5)
    at(flow, S.FAILED, ago(hours=30), seconds=3)

    response = request.getfixturevalue(persona).get(URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert "Needs a person now" in html
    panel = html[html.index(f'id="flow-{flow.pk}"'):]
    assert panel.count("<figure") == 4  # 24 h and 7 days, counts and time to Salesforce
    assert panel.count('role="img"') == 4
    assert 'href="/console/deliveries/?outcome=held"' in html  # both may see webhook deliveries


def test_staff_without_a_group_gets_403(dave, db):
    from .conftest import logged_in

    assert logged_in(dave).get(URL).status_code == 403


# --- buckets --------------------------------------------------------------------------------------------------


def test_the_windows_are_cut_on_the_local_clock():
    day, week = board.day_window(NOW), board.week_window(NOW)

    assert (day.since, day.origin, day.buckets) == (ago(hours=24), dt.datetime(2026, 11, 29, 10, tzinfo=UTC), 25)
    assert (week.since, week.origin, week.buckets) == (ago(days=7), dt.datetime(2026, 11, 23, 6, tzinfo=UTC), 29)
    assert day.periods[0] == "Sun 29 Nov 10:20–11:00 UTC"  # the first bucket starts with the window
    assert day.periods[-1] == "Mon 30 Nov 10:00–10:20 UTC (so far)"
    assert week.periods[27] == "Mon 30 Nov 00:00–06:00 UTC"


def test_in_india_the_hours_are_indias(settings):
    settings.TIME_ZONE = "Asia/Kolkata"  # UTC+5:30: local hours start at :30 UTC
    with timezone.override("Asia/Kolkata"):
        day, week = board.day_window(NOW), board.week_window(NOW)
        assert day.origin == dt.datetime(2026, 11, 29, 9, 30, tzinfo=UTC)  # 15:00 in Kolkata
        assert week.origin == dt.datetime(2026, 11, 23, 6, 30, tzinfo=UTC)  # 12:00 in Kolkata
        assert day.periods[0] == "Sun 29 Nov 15:50–16:00 IST"


@pytest.fixture
def week_of_triggers(org) -> dict[str, Flow]:
    welcome, other = make_flow(org), make_flow(org, "Other_Flow")
    at(welcome, S.FAILED, ago(days=7, minutes=1))  # just before the 7 days: nowhere
    at(welcome, S.SUCCEEDED, ago(days=7) + dt.timedelta(minutes=1), seconds=8)  # 23 Nov 10:21: 7 days, bucket 0
    at(other, S.FAILED, dt.datetime(2026, 11, 29, 10, 19, tzinfo=UTC), seconds=2)  # a minute before the 24 hours
    at(welcome, S.SUCCEEDED, dt.datetime(2026, 11, 29, 10, 21, tzinfo=UTC), seconds=1)  # 24 h bucket 0
    at(welcome, S.UNKNOWN, dt.datetime(2026, 11, 30, 5, 59, 59, tzinfo=UTC), seconds=30)  # 24 h 19, 7 d 27
    at(welcome, S.SUCCEEDED, dt.datetime(2026, 11, 30, 6, 0, tzinfo=UTC), seconds=3)  # 24 h 20, 7 d 28
    at(welcome, S.RETRYING, dt.datetime(2026, 11, 30, 9, 59, tzinfo=UTC))  # 24 h 23
    at(welcome, S.FAILED, dt.datetime(2026, 11, 30, 10, 0, tzinfo=UTC), seconds=5)  # 24 h 24 (so far)
    at(welcome, S.QUEUED, dt.datetime(2026, 11, 30, 10, 19, tzinfo=UTC))  # 24 h 24
    return {"welcome": welcome, "other": other}


def nonzero(counts: dict[str, list[int]]) -> dict[str, dict[int, int]]:
    return {status: {i: n for i, n in enumerate(values) if n} for status, values in counts.items() if any(values)}


def test_each_trigger_lands_in_its_hour_and_its_six_hours(week_of_triggers):
    welcome, other = week_of_triggers["welcome"], week_of_triggers["other"]

    day = board.flow_windows(board.day_window(NOW))
    week = board.flow_windows(board.week_window(NOW))

    assert set(day) == {welcome.pk}  # `other` only a minute before the 24 hours
    assert nonzero(day[welcome.pk].counts) == {
        "succeeded": {0: 1, 20: 1}, "unknown": {19: 1}, "retrying": {23: 1}, "failed": {24: 1}, "queued": {24: 1}}
    assert day[welcome.pk].by_status == {"succeeded": 2, "unknown": 1, "retrying": 1, "failed": 1, "queued": 1}
    assert nonzero(week[welcome.pk].counts) == {
        "succeeded": {0: 1, 24: 1, 28: 1}, "unknown": {27: 1}, "retrying": {28: 1}, "failed": {28: 1},
        "queued": {28: 1}}
    assert week[other.pk].by_status == {"failed": 1}
    assert week[welcome.pk].series(("queued", "sending")) == [0] * 28 + [1]


def test_time_to_salesforce_is_p50_and_p95_of_the_succeeded_only(flow):
    at(flow, S.SUCCEEDED, ago(hours=30), seconds=100)  # 7 days only
    hour = dt.datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    for minute, seconds in enumerate((1, 2, 3, 4, 10)):
        at(flow, S.SUCCEEDED, hour + dt.timedelta(minutes=minute), seconds=seconds)
    at(flow, S.FAILED, hour + dt.timedelta(minutes=30), seconds=900)  # not a time to Salesforce
    at(flow, S.UNKNOWN, hour + dt.timedelta(minutes=31), seconds=900)

    day = board.flow_windows(board.day_window(NOW))[flow.pk]
    week = board.flow_windows(board.week_window(NOW))[flow.pk]

    assert (day.p50[22], day.p95[22]) == (pytest.approx(3), pytest.approx(8.8))  # as percentile_cont
    assert [i for i, v in enumerate(day.p50) if v is not None] == [22]
    assert (day.p50_all, day.p95_all) == (pytest.approx(3), pytest.approx(8.8))
    assert (week.p50_all, week.p95_all) == (pytest.approx(3.5), pytest.approx(77.5))  # 1, 2, 3, 4, 10, 100
    assert day.success_rate == pytest.approx(5 / 7)


def test_sqlite_counts_what_postgresql_counts(week_of_triggers):
    """The local demo's SQLite has no percentile_cont: the same rows are computed in Python."""
    for window in (board.day_window(NOW), board.week_window(NOW)):
        in_sql = sorted(board._window_rows_sql(window), key=repr)
        in_python = sorted(board._window_rows_python(window), key=repr)
        assert len(in_sql) == len(in_python)
        for got, expected in zip(in_sql, in_python):
            assert got[:4] == expected[:4]
            assert (got[4] is None) == (expected[4] is None)
            if got[4] is not None:
                assert list(got[4]) == pytest.approx(list(expected[4]))


def test_the_7_days_are_read_at_most_every_2_minutes_the_24_hours_every_time(as_bob, flow, clock):
    at(flow, S.SUCCEEDED, ago(hours=2), seconds=1)
    first = as_bob.get(URL).context["page"]

    at(flow, S.FAILED, ago(hours=1), seconds=1)
    second = as_bob.get(URL).context["page"]

    assert (first.flows[0].day.total, second.flows[0].day.total) == (1, 2)
    assert (first.flows[0].week.total, second.flows[0].week.total) == (1, 1)  # shared, read once
    assert second.week_read_at == NOW
    assert tile(as_bob.get(URL).content.decode(), "failed")[0] == 1  # what needs a person: at once


# --- the charts -----------------------------------------------------------------------------------------------


def test_the_charts_say_their_numbers_in_tooltips_and_captions(as_bob, week_of_triggers, clock):
    welcome = week_of_triggers["welcome"]

    html = as_bob.get(URL).content.decode()

    day = re.search(rf'<figure class="chart" id="flow-{welcome.pk}-day">(.*?)</figure>', html, re.S).group(1)
    assert day.count('<g class="chart-bar">') == 25
    assert "<title>Mon 30 Nov 05:00–06:00 UTC: 1 trigger (1 unknown)</title>" in day
    assert "<title>Mon 30 Nov 10:00–10:20 UTC (so far): 2 triggers (1 failed, 1 queued or sending)</title>" in day
    assert "<title>Sun 29 Nov 11:00–12:00 UTC: 0 triggers</title>" in day
    assert ">Per hour (UTC)<" in day  # the time zone on the axis
    for label in ("Succeeded", "Failed", "Unknown", "Retrying", "Queued or sending"):
        assert f">{label}</text>" in day  # the legend
    caption = re.search(r"<figcaption[^>]*>(.*?)</figcaption>", day).group(1)
    assert caption == ("Triggers per hour, last 24 hours (UTC): 6 in all — 2 succeeded, 1 failed, 1 unknown, "
                       "1 retrying, 1 queued or sending.")
    week = re.search(rf'id="flow-{welcome.pk}-week">(.*?)</figure>', html, re.S).group(1)
    assert week.count('<g class="chart-bar">') == 29
    assert "Triggers per 6 hours, last 7 days (UTC): 7 in all — 3 succeeded" in week
    latency = re.search(rf'id="flow-{welcome.pk}-day-latency">(.*?)</figure>', html, re.S).group(1)
    assert "<title>Mon 30 Nov 06:00–07:00 UTC: p50 3.0 s, p95 3.0 s (1 succeeded)</title>" in latency
    assert "p50 2.0 s, p95 2.9 s over 2 succeeded triggers." in latency
    assert "<polyline" in latency or "<circle" in latency


def test_a_stacked_bar_is_as_tall_as_its_count():
    window = board.day_window(NOW)
    stats = board.FlowWindow(window.buckets)
    stats.counts[S.SUCCEEDED][3], stats.counts[S.FAILED][3], stats.counts[S.SUCCEEDED][4] = 6, 2, 4

    svg = board.counts_chart(window, stats, "c")

    bars = re.findall(r'<g class="chart-bar">(.*?)</g>', svg)
    segment = re.compile(r'y="([\d.]+)" width="[\d.]+" height="([\d.]+)" fill=')  # a coloured rect, not the hover one
    segments = [[(float(y), float(h)) for y, h in segment.findall(bar)] for bar in bars]  # (top, height), bottom up
    [(succeeded_top, succeeded), (failed_top, failed)], [(_, four)] = segments[3], segments[4]
    assert (succeeded, failed) == (pytest.approx(four * 6 / 4, abs=0.11), pytest.approx(four * 2 / 4, abs=0.11))
    assert succeeded_top + succeeded == pytest.approx(210 - board.BOTTOM, abs=0.11)  # on the axis
    assert failed_top + failed == pytest.approx(succeeded_top, abs=0.11)  # on the succeeded ones
    assert segments[0] == []


# --- what needs a person, and where the links lead --------------------------------------------------------------


@pytest.fixture
def needing(org) -> dict[str, Trigger]:
    """Oldest first. Chains: f2 re-sent as r2 (failed again), f4 re-sent as r4 (succeeded), u2 re-sent as r5."""
    welcome, other = make_flow(org), make_flow(org, "Other_Flow")
    t: dict[str, Trigger] = {}
    t["u1"] = at(welcome, S.UNKNOWN, ago(days=3), seconds=30)
    t["u2"] = at(other, S.UNKNOWN, ago(days=2), seconds=30)
    t["r5"] = at(other, S.QUEUED, ago(days=2) + dt.timedelta(hours=1), origin=t["u2"], resend_of=t["u2"])
    t["f3"] = at(welcome, S.FAILED, ago(hours=25), seconds=1)  # before the 24 hours
    t["f4"] = at(welcome, S.FAILED, ago(hours=5), seconds=1)
    t["r4"] = at(welcome, S.SUCCEEDED, ago(hours=4, minutes=30), seconds=1, origin=t["f4"], resend_of=t["f4"])
    t["f2"] = at(other, S.FAILED, ago(hours=3), seconds=1)
    t["f1"] = at(welcome, S.FAILED, ago(hours=2), seconds=1)
    t["s1"] = at(welcome, S.SUCCEEDED, ago(hours=1, minutes=30), seconds=1)
    t["r2"] = at(other, S.FAILED, ago(hours=1), seconds=1, origin=t["f2"], resend_of=t["f2"])
    return t


def tile(html: str, key: str) -> tuple[int, str]:
    match = re.search(rf'<a href="([^"]+)" id="attention-{key}"><span class="dash-count">(\d+)</span>', html)
    assert match, f"no {key} tile"
    return int(match.group(2)), match.group(1).replace("&amp;", "&")


def test_failed_in_the_last_24_hours_not_resent_links_to_exactly_those(as_bob, needing, clock):
    count, href = tile(as_bob.get(URL).content.decode(), "failed")

    assert count == 2
    assert parse_qs(urlsplit(href).query) == {"status": ["failed"], "since": ["2026-11-29T10:20"], "resent": ["no"]}
    listed = as_bob.get(href)
    assert listed.status_code == 200
    assert rows(listed) == [needing["r2"].pk, needing["f1"].pk]  # not f2 (re-sent), f4 (re-sent), f3 (too old)
    assert listed.context["form"].params == {"status": "failed", "since": "2026-11-29T10:20", "resent": "no"}
    # the filter bar shows it, so filtering again keeps it
    assert 'type="datetime-local" name="since" value="2026-11-29T10:20"' in listed.content.decode()


def test_unknown_outcomes_to_decide_links_to_exactly_those(as_bob, needing, clock):
    count, href = tile(as_bob.get(URL).content.decode(), "unknown")

    assert count == 1
    assert parse_qs(urlsplit(href).query) == {"status": ["unknown"], "resent": ["no"]}
    assert rows(as_bob.get(href)) == [needing["u1"].pk]  # u2 was re-sent: decided


def test_an_unknown_marked_as_delivered_leaves_the_count(as_bob, needing, clock, bob):
    from flows.services import trigger_mark_delivered

    trigger_mark_delivered(trigger=needing["u1"], actor=bob)

    assert tile(as_bob.get(URL).content.decode(), "unknown")[0] == 0


def test_held_webhook_deliveries_link_to_the_held_ones(as_bob, org, clock):
    # Counted across all webhooks: start from none (a delivery committed by an earlier test's worker thread
    # would otherwise be counted too; this transaction rolls the deletion back).
    WebhookDelivery.objects.all().delete()
    webhook = ShopifyWebhook.objects.create(name="Shop", slug="shop", shop_domains="*", secret="s" * 32)

    def delivery(n: int, outcome: str, held_for: str = "") -> WebhookDelivery:
        return WebhookDelivery.objects.create(webhook=webhook, shopify_webhook_id=f"w{n}", topic="orders/create",
                                              signed_with="current", outcome=outcome, held_for=held_for)

    held = [delivery(1, "held", "inactive"), delivery(2, "held", "paused")]
    delivery(3, "triggered")
    delivery(4, "unmappable")

    html = as_bob.get(URL).content.decode()

    count, href = tile(html, "held")
    assert (count, href) == (2, "/console/deliveries/?outcome=held")
    assert ("1 for an inactive flow or org: replay them once it is active again. 1 for a paused org: replayed by "
            "themselves when the pause ends.") in html
    listed = as_bob.get(href)
    assert [d.pk for d in listed.context["rows"]] == [held[1].pk, held[0].pk]


def test_the_trigger_list_describes_the_new_filters(as_bob, needing, clock):
    from flows.console.forms import describe_filter

    _, href = tile(as_bob.get(URL).content.decode(), "failed")
    params = {key: values[0] for key, values in parse_qs(urlsplit(href).query).items()}

    assert describe_filter(params) == "every failed trigger created since 2026-11-29 10:20, not re-sent"


# --- orgs: usage over time, pauses --------------------------------------------------------------------------------


def limit_response(used: int, limit: int = 15000) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response.headers["Sforce-Limit-Info"] = f"api-usage={used}/{limit}"
    return response


def test_usage_samples_are_written_at_most_once_per_5_minutes_per_org(org, monkeypatch):
    other = make_org(slug="globex", url="https://globex.my.salesforce.com")
    moment = {"now": dt.datetime(2026, 11, 30, 10, 0, tzinfo=UTC)}
    monkeypatch.setattr(timezone, "now", lambda: moment["now"])

    def note(target: Org, used: int, minutes: float) -> None:
        moment["now"] = dt.datetime(2026, 11, 30, 10, 0, tzinfo=UTC) + dt.timedelta(minutes=minutes)
        SalesforceClient(target)._note_limits(limit_response(used))  # a new client: as another process would

    for minute in range(0, 15):  # a busy org: a call a minute (dozens a second would do the same)
        note(org, 100 + minute, minute)
    note(other, 7, 4.99)

    samples = list(OrgUsageSample.objects.order_by("org_id", "seen_at").values_list("org_id", "used", "seen_at"))
    assert samples == [
        (org.pk, 100, dt.datetime(2026, 11, 30, 10, 0, tzinfo=UTC)),
        (org.pk, 105, dt.datetime(2026, 11, 30, 10, 5, tzinfo=UTC)),
        (org.pk, 110, dt.datetime(2026, 11, 30, 10, 10, tzinfo=UTC)),
        (other.pk, 7, dt.datetime(2026, 11, 30, 10, 4, 59, 400000, tzinfo=UTC)),
    ]
    org.refresh_from_db()
    assert (org.api_usage_used, org.api_usage_max) == (114, 15000)  # the latest is still written every time


def test_samples_older_than_8_days_are_purged(org):
    old = OrgUsageSample.objects.create(org=org, used=1, max=10, seen_at=ago(days=8, minutes=1))
    kept = OrgUsageSample.objects.create(org=org, used=2, max=10, seen_at=ago(days=7, hours=23))

    assert org_usage_samples_purge(now=NOW) == 1

    assert list(OrgUsageSample.objects.all()) == [kept]
    assert not OrgUsageSample.objects.filter(pk=old.pk).exists()


def test_the_daily_retention_task_purges_the_samples(org, settings):
    settings.FLOWGATE_EXCHANGE_RETENTION_DAYS = 0  # exchanges kept forever; the samples go all the same
    now = timezone.now()
    OrgUsageSample.objects.create(org=org, used=1, max=10, seen_at=now - dt.timedelta(days=9))
    kept = OrgUsageSample.objects.create(org=org, used=2, max=10, seen_at=now - dt.timedelta(days=1))

    purge_exchanges()

    assert list(OrgUsageSample.objects.all()) == [kept]


def test_usage_is_drawn_per_hour_against_the_limit_and_a_pause_is_shown(as_bob, org, clock):
    quiet = make_org(slug="globex", url="https://globex.my.salesforce.com")
    Org.objects.filter(pk=org.pk).update(paused_until=NOW + dt.timedelta(minutes=12))
    Org.objects.filter(pk=quiet.pk).update(paused_until=NOW - dt.timedelta(minutes=1))  # a pause that has ended
    for minutes, used in ((5, 14000), (10, 14900), (65, 9000)):  # 10:15 and 10:10: the 10:xx hour peaks at 14,900
        OrgUsageSample.objects.create(org=org, used=used, max=15000, seen_at=ago(minutes=minutes))
    OrgUsageSample.objects.create(org=org, used=1, max=15000, seen_at=ago(days=7, minutes=1))  # before the window

    [usage, none] = board.org_usage(board.week_window(NOW, width_hours=1), [org, quiet])

    assert [(i, v) for i, v in enumerate(usage.used) if v is not None] == [(167, 9000), (168, 14900)]
    assert usage.limit[168] == 15000 and not none.seen
    html = as_bob.get(URL).content.decode()
    chart = re.search(rf'id="org-{org.pk}-usage">(.*?)</figure>', html, re.S).group(1)
    assert "<title>Mon 30 Nov 10:00–10:20 UTC (so far): peak 14,900 of 15,000 (99%)</title>" in chart
    assert 'stroke-dasharray="5 3"' in chart  # the limit, dashed
    assert "highest 14,900 of 15,000 (99%)" in chart
    assert re.search(r'paused until <time[^>]*>2026-11-30 10:32 UTC</time>', html)
    assert "paused until 10:19" not in html
    assert tile(html, "paused")[0] == 1
    assert "No API usage seen in the last 7 days" in html  # globex


# --- empty ------------------------------------------------------------------------------------------------------


def test_the_empty_dashboard_renders(as_alice, db, clock):
    response = as_alice.get(URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert "No trigger in the last 24 hours." in html
    assert "No trigger in the last 7 days." in html
    assert "<figure" not in html
    for key in ("failed", "unknown", "held", "paused"):
        assert tile(html, key)[0] == 0
