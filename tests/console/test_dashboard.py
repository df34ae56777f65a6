"""The dashboard: per flow over the last 24 hours, counts by status, success rate, median time; per org, API usage."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from flows.models import Flow, Org, Trigger
from flows.selectors import flow_stats_last_day
from tests.conftest import make_flow, make_org

from .conftest import make_trigger

S = Trigger.Status
URL = reverse("console:dashboard")


def timed(flow: Flow, status: str, *, hours_ago: float, seconds: float | None = None) -> Trigger:
    """A trigger created `hours_ago`, finished `seconds` later (when given)."""
    trigger = make_trigger(flow, status=status)
    created = timezone.now() - dt.timedelta(hours=hours_ago)
    finished = created + dt.timedelta(seconds=seconds) if seconds is not None else None
    Trigger.objects.filter(pk=trigger.pk).update(created_at=created, finished_at=finished)
    return trigger


@pytest.fixture
def busy(org) -> dict[str, Flow]:
    welcome, other, quiet = make_flow(org), make_flow(org, "Other_Flow"), make_flow(org, "Quiet_Flow")
    for hours_ago, seconds in ((1, 1.0), (2, 2.0), (3, 10.0)):
        timed(welcome, S.SUCCEEDED, hours_ago=hours_ago, seconds=seconds)
    timed(welcome, S.FAILED, hours_ago=4, seconds=30)
    timed(welcome, S.QUEUED, hours_ago=0.1)
    timed(welcome, S.RETRYING, hours_ago=23.5)
    timed(welcome, S.UNKNOWN, hours_ago=2, seconds=3)  # its answer was lost: final, but not a success
    for _ in range(5):  # yesterday's: out of the window
        timed(welcome, S.FAILED, hours_ago=25, seconds=1)
    timed(welcome, S.SUCCEEDED, hours_ago=30, seconds=500)
    timed(other, S.FAILED, hours_ago=5, seconds=1)
    timed(other, S.FAILED, hours_ago=6, seconds=1)
    timed(other, S.SUCCEEDED, hours_ago=7, seconds=0.25)
    timed(quiet, S.FAILED, hours_ago=48, seconds=1)  # nothing recent: no row
    return {"welcome": welcome, "other": other, "quiet": quiet}


def test_the_stats_count_the_last_24_hours_by_status(busy):
    stats = {s["flow"].api_name: s for s in flow_stats_last_day()}

    assert set(stats) == {"On_Demand_Flow", "Other_Flow"}
    welcome = stats["On_Demand_Flow"]
    assert welcome["by_status"] == {"succeeded": 3, "failed": 1, "queued": 1, "retrying": 1, "unknown": 1}
    assert welcome["total"] == 7
    assert welcome["success_rate"] == pytest.approx(3 / 5)  # of the finished ones, unknown among them
    assert welcome["median_seconds"] == pytest.approx(2.0)  # of the successful ones: 1, 2, 10
    other = stats["Other_Flow"]
    assert (other["total"], other["success_rate"], other["median_seconds"]) == (3, pytest.approx(1 / 3),
                                                                                pytest.approx(0.25))


def test_a_flow_with_nothing_finished_has_no_rate_or_median(flow):
    timed(flow, S.QUEUED, hours_ago=1)

    [row] = flow_stats_last_day()

    assert (row["total"], row["success_rate"], row["median_seconds"]) == (1, None, None)


def row_cells(html: str, flow: Flow) -> list[str]:
    href = f'{reverse("console:triggers")}?flow={flow.pk}&amp;status='
    match = re.search(rf'<tr><td><a href="{re.escape(href)}">([^<]*)</a></td>\s*(.*?)</tr>', html, re.S)
    assert match, f"no row for {flow}"
    return [match.group(1), *(re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td>(.*?)</td>", match.group(2)))]


def test_the_dashboard_renders_a_row_per_recent_flow(as_bob, busy):
    response = as_bob.get(URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert [label for _, label in S.choices] == ["Queued", "Sending", "Retrying", "Succeeded", "Failed", "Unknown"]
    assert "<th>Unknown</th>" in html
    #                                          queued sending retrying succeeded failed unknown total rate median p95
    assert row_cells(html, busy["welcome"]) == ["acme/On_Demand_Flow", "1", "0", "1", "3", "1", "1", "7", "60.0%",
                                                "2.0 s", "9.2 s"]
    assert row_cells(html, busy["other"]) == ["acme/Other_Flow", "0", "0", "0", "1", "2", "0", "3", "33.3%",
                                              "250 ms", "250 ms"]
    # an unknown count leads to those triggers, where a person decides
    assert (f'<a class="status status-unknown" href="{reverse("console:triggers")}?flow={busy["welcome"].pk}'
            f'&amp;status=unknown"') in html
    table = html[html.index('<table id="result_list"'):html.index("</table>")]
    assert "acme/Quiet_Flow" not in table  # nothing in the last 24 hours (its charts show its last 7 days)


def test_an_empty_dashboard_says_so(as_bob, db):
    assert "No trigger in the last 24 hours." in as_bob.get(URL).content.decode()


def test_the_dashboard_shows_each_orgs_api_usage(as_bob, org):
    seen = timezone.make_aware(dt.datetime(2026, 11, 28, 9, 15))
    Org.objects.filter(pk=org.pk).update(api_usage_used=1234, api_usage_max=5000, api_usage_seen_at=seen)
    make_org(slug="globex", url="https://globex.my.salesforce.com")
    retired = make_org(slug="initech", url="https://initech.my.salesforce.com")
    Org.objects.filter(pk=retired.pk).update(is_active=False, api_usage_used=1, api_usage_max=2)

    html = as_bob.get(URL).content.decode()

    orgs = html[html.index("<h2>Orgs</h2>"):]
    acme = re.search(r'<tr><td>Acme <span class="muted">acme</span></td>\s*<td>([^<]*)</td>\s*<td><time[^>]*>([^<]*)'
                     r'</time></td>', orgs)
    assert acme.groups() == ("1,234 of 5,000 (25 %)", "2026-11-28 09:15 UTC")
    globex = re.search(r'<tr><td>Globex <span class="muted">globex</span></td>\s*<td>([^<]*)</td>', orgs)
    assert globex.group(1) == "not seen yet"
    assert "initech" not in orgs  # inactive orgs are left out
