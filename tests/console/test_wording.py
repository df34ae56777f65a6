"""One spelling and one format wherever people read them (issue 12, frictions 6 and 7): sources, API usage, dates
with their zone and the exact time on hover, field names, help texts, and the way between the admin and the
console. Personas: alice the admin, bob from Support."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from flows.console.forms import FireForm
from flows.models import FlowInput, Org, Trigger
from flows.templatetags.console import usage, when

pytestmark = pytest.mark.django_db

MOMENT = dt.datetime(2026, 12, 1, 21, 1, 5, 123456, tzinfo=dt.timezone.utc)
SHOWN = re.compile(r'<time datetime="2026-12-01T21:01:05\.123456\+00:00" title="2026-12-01 21:01:05\.123 UTC">'
                   r"2026-12-01 21:01 UTC</time>")


def test_a_moment_is_shown_to_the_minute_with_its_zone_and_exactly_on_hover():
    assert SHOWN.fullmatch(when(MOMENT))
    assert when(None) == "–"


def test_the_zone_shown_is_the_portals(settings):
    settings.TIME_ZONE = "Europe/Paris"
    timezone.activate("Europe/Paris")
    try:
        assert ">2026-12-01 22:01 CET</time>" in when(MOMENT)
    finally:
        timezone.deactivate()


def test_the_console_and_the_admin_show_a_trigger_the_same_way(client, alice, flow):
    trigger = Trigger.objects.create(flow=flow, inputs={}, source=Trigger.Source.CLI, status=Trigger.Status.FAILED)
    Trigger.objects.filter(pk=trigger.pk).update(created_at=MOMENT)
    client.force_login(alice)

    console = client.get("/console/").content.decode()
    admin = client.get("/admin/flows/trigger/").content.decode()

    assert SHOWN.search(console), re.findall(r"<time[^>]*>[^<]*</time>", console)
    assert "2026-12-01 21:01 UTC" in admin and "Dec. 1" not in admin
    assert "<td>CLI</td>" in console and ">CLI</a>" in admin  # the table and the admin's filter alike
    assert ">cli<" not in console + admin and "Cli" not in console + admin


@pytest.mark.parametrize("used, limit, shown", [
    (29, 100000, "29 of 100,000 (0.03 %)"),
    (4200, 5000, "4,200 of 5,000 (84 %)"),
    (75, 5000, "75 of 5,000 (1.5 %)"),
    (None, None, "not seen yet"),
])
def test_api_usage_reads_the_same_everywhere(used, limit, shown):
    assert usage(Org(api_usage_used=used, api_usage_max=limit)) == shown
    assert limit is None or usage((used, limit)) == shown


def test_the_org_list_names_api_fields_as_api_and_shows_usage_in_that_format(client, alice, org):
    Org.objects.filter(pk=org.pk).update(api_usage_used=29, api_usage_max=100000, api_usage_seen_at=MOMENT)
    client.force_login(alice)

    page = client.get("/admin/flows/org/").content.decode()

    assert "API version" in page and "API usage seen at" in page and "Api " not in page
    assert "29 of 100,000 (0.03 %)" in page


def test_the_fire_form_says_items_then_one_per_line_and_never_offers_unknown(flow):
    FlowInput.objects.create(flow=flow, name="Items", type=FlowInput.Type.TEXT, is_collection=True,
                             description="Items", order=5)
    FlowInput.objects.create(flow=flow, name="OptIn", type=FlowInput.Type.BOOLEAN, order=6)

    form = FireForm(flow=flow)

    assert form.fields["Items"].help_text == "Items. One text per line."
    assert [label for _, label in form.fields["OptIn"].choices] == ["— not sent", "Yes", "No"]
    posted = FireForm({"IndividualId": "003X", "OptIn": ""}, flow=flow)
    assert posted.is_valid(), posted.errors
    assert "OptIn" not in posted.inputs()
    assert FireForm({"IndividualId": "003X", "OptIn": "false"}, flow=flow).is_valid()


def test_a_filter_is_confirmed_in_words_with_the_sources_spelling(client, bob, flow):
    client.force_login(bob)

    page = client.get("/console/triggers/resend-all/?q=x@example.com&status=failed&source=api").content.decode()

    assert "every failed trigger with an input equal to “x@example.com”, from the source API" in page
    assert "q=x@example.com" not in re.sub(r'href="[^"]*"|value="[^"]*"', "", page)


def test_the_admin_links_the_console_its_dashboard_and_jobs_and_the_console_links_the_admin(client, alice, bob):
    client.force_login(alice)
    admin_home = client.get("/admin/").content.decode()
    client.force_login(bob)
    console = client.get("/console/").content.decode()

    for link in ('href="/console/"', 'href="/console/dashboard/"', 'href="/console/jobs/"'):
        assert admin_home.count(link) >= 2, f"{link} in the header and on the index"
    assert "View site" not in admin_home
    assert 'href="/admin/"' in console
