"""Triggers whose outcome is unknown (at most once: Salesforce may have run the flow, its answer was lost): their
own filter and style in the console, their column on the dashboard, and a person's decision on the trigger's page,
Mark as delivered or Re-send, tried as bob would."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from flows.models import Trigger
from flows.templatetags.console import when

from .conftest import logged_in, make_trigger, rows

S = Trigger.Status
LIST = reverse("console:triggers")
HINT = "The call timed out after Salesforce received it: check in Salesforce whether the flow ran."


@pytest.fixture
def unknown(flow) -> Trigger:
    return make_trigger(flow, status=S.UNKNOWN, error_code="TIMEOUT", error_message="Read timed out.", hint=HINT,
                        inputs={"IndividualId": "ID-LOST", "EmailAddress": "lost@example.com"})


def page_of(trigger: Trigger) -> str:
    return reverse("console:trigger", args=[trigger.pk])


def mark_url(trigger: Trigger) -> str:
    return reverse("console:trigger_mark_delivered", args=[trigger.pk])


def strict_client(user) -> Client:
    """A browser: CSRF enforced, so every form must carry its token."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def submit(client: Client, html: str, action: str, **extra: str):
    """Posts the page's form whose action is `action`, with its hidden fields (its CSRF token among them)."""
    form = re.search(rf'<form method="post" action="{re.escape(action)}"[^>]*>(.*?)</form>', html, re.S)
    assert form, f"no form posting to {action}"
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(1)))
    return client.post(action, {**fields, **extra}, follow=True)


def test_the_status_filter_offers_unknown_and_the_list_styles_it(as_bob, flow, unknown):
    make_trigger(flow)  # failed: not shown under unknown

    response = as_bob.get(LIST, {"status": "unknown"})

    html = response.content.decode()
    assert '<option value="unknown" selected>Unknown</option>' in html
    assert rows(response) == [unknown.pk]
    assert '<span class="status status-unknown">unknown</span>' in html
    css = Path(__file__).resolve().parents[2].joinpath("flows/static/console/console.css").read_text()
    rule = re.search(r"\.status-unknown \{ background: (#[0-9a-f]{6}); \}", css)
    assert rule, "the console's stylesheet styles unknown"
    others = dict(re.findall(r"\.status-(failed|succeeded)[^{]*\{ background: (#[0-9a-f]{6}); \}", css))
    assert rule.group(1) not in others.values()  # neither the failed red nor the succeeded green


def test_the_page_of_an_unknown_trigger_asks_a_person_to_decide(as_bob, unknown):
    html = as_bob.get(page_of(unknown)).content.decode()

    start = html.index('id="unknown-box"')
    box = html[start:html.index('<dl class="facts">', start)]
    assert ("Salesforce may have run this flow: its answer was lost.</strong> Check in Salesforce whether the "
            "customer got it, then:") in box
    assert f'action="{mark_url(unknown)}"' in box and ">Mark as delivered</button>" in box
    assert f'action="{reverse("console:trigger_resend", args=[unknown.pk])}"' in box and ">Re-send</button>" in box
    assert box.count("csrfmiddlewaretoken") == 2
    assert HINT in html


def test_the_live_part_shows_the_decision_as_soon_as_the_trigger_ends_unknown(as_bob, unknown):
    """The trigger page follows a trigger live: the box must come with the update, not only after a reload."""
    live = as_bob.get(reverse("console:trigger_live", args=[unknown.pk])).content.decode()

    assert 'id="unknown-box"' in live and ">Mark as delivered</button>" in live
    assert live.count("csrfmiddlewaretoken") == 2


def test_support_without_the_resend_permission_sees_no_decision_buttons(unknown):
    from tests.conftest import support_user

    carol = support_user("carol")
    carol.groups.clear()
    carol.user_permissions.add(Permission.objects.get(codename="view_trigger"))

    html = logged_in(carol).get(page_of(unknown)).content.decode()

    assert "Salesforce may have run this flow" in html
    assert "Mark as delivered</button>" not in html


def test_bob_marks_an_unknown_trigger_as_delivered(bob, unknown):
    browser = strict_client(bob)
    listing = browser.get(LIST, {"status": "unknown"}).content.decode()
    assert f'href="{page_of(unknown)}">#{unknown.pk}</a>' in listing

    page = browser.get(page_of(unknown)).content.decode()
    response = submit(browser, page, mark_url(unknown))

    unknown.refresh_from_db()
    assert (unknown.status, unknown.delivered_by, unknown.error_code) == (S.SUCCEEDED, bob, "TIMEOUT")
    assert unknown.delivered_at is not None
    assert Trigger.objects.count() == 1  # nothing sent
    html = response.content.decode()
    assert f"Trigger {unknown.pk} marked as delivered." in html
    assert f"Marked as delivered by bob at {when(unknown.delivered_at)}" in html
    assert 'id="unknown-box"' not in html
    assert rows(browser.get(LIST, {"status": "unknown"})) == []

    # A second mark (another tab, a double click) changes nothing and says why.
    before = unknown.delivered_at
    again = submit(browser, page, mark_url(unknown)).content.decode()

    unknown.refresh_from_db()
    assert (unknown.status, unknown.delivered_by, unknown.delivered_at) == (S.SUCCEEDED, bob, before)
    assert f"Trigger {unknown.pk} was already marked as delivered by bob at " in again
    assert "nothing changed." in again


def test_marking_a_trigger_that_is_not_unknown_changes_nothing(as_bob, flow):
    failed = make_trigger(flow)

    html = as_bob.post(mark_url(failed), follow=True).content.decode()

    failed.refresh_from_db()
    assert (failed.status, failed.delivered_by, failed.delivered_at) == (S.FAILED, None, None)
    assert (f"Trigger {failed.pk} is failed, not unknown: only a trigger whose outcome is unknown can be marked as "
            f"delivered. Nothing changed.") in html


def test_bob_resends_an_unknown_trigger_after_confirming(bob, unknown):
    browser = strict_client(bob)
    page = browser.get(page_of(unknown)).content.decode()
    resend = reverse("console:trigger_resend", args=[unknown.pk])

    asked = submit(browser, page, resend).content.decode()

    assert Trigger.objects.count() == 1  # asked first: the customer may already have it
    assert f"Re-send trigger #{unknown.pk} again?" in asked
    assert "This trigger's outcome is unknown: Salesforce may have run the flow" in asked
    assert "so it may already have reached the customer." in asked

    done = submit(browser, asked, resend)

    [new] = Trigger.objects.exclude(pk=unknown.pk)
    assert (new.origin_id, new.resend_of_id, new.inputs, new.actor, new.status) == (
        unknown.pk, unknown.pk, unknown.inputs, bob, S.QUEUED)
    assert done.redirect_chain[-1][0] == page_of(new)
    unknown.refresh_from_db()
    assert unknown.status == S.UNKNOWN  # still undecided: that is for Salesforce's record, not this re-send

    # Bob clicks Re-send on the old page again: the new one is on its way, nothing more is created.
    submit(browser, page, resend, confirm="yes")
    assert Trigger.objects.count() == 2


def test_staff_with_only_the_view_permission_cannot_mark_delivered(dave, unknown):
    dave.user_permissions.add(Permission.objects.get(codename="view_trigger"))

    response = logged_in(dave).post(mark_url(unknown))

    assert response.status_code == 403
    unknown.refresh_from_db()
    assert (unknown.status, unknown.delivered_by) == (S.UNKNOWN, None)
