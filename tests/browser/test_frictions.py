"""Issue 12 in a real browser: on a trigger's page, what the live update contradicts changes with it (console.js).
No worker: the test moves the triggers on itself, so the page is surely open while they change."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from flows.models import Trigger
from tests.conftest import make_flow, make_org, support_user

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
LIVE = 10_000  # ms: the page polls every second


def test_the_queued_message_and_the_resend_box_follow_the_live_update(page, live_server, login, enqueued):
    flow = make_flow(make_org())
    support_user()
    login("bob", "bob-password-1")

    page.goto(f"{live_server.url}/console/flows/{flow.pk}/fire/")
    page.fill("#id_IndividualId", "003ADA")
    page.click("input[value='Fire flow']")
    trigger = Trigger.objects.get()
    message = page.locator(".messagelist li", has_text=f"Trigger {trigger.pk} queued.")
    expect(message).to_have_class("success")

    Trigger.objects.filter(pk=trigger.pk).update(status=Trigger.Status.FAILED, error_code="UNKNOWN_EXCEPTION",
                                                 error_message="An error occurred.")

    expect(page.locator("#trigger-live .status")).to_have_text("failed", timeout=LIVE)
    expect(message).to_have_class("error")
    expect(message).to_contain_text(f"Since then, trigger {trigger.pk} failed: see the error below.")

    # Bob re-sends it; the failed original's page says the re-send is on its way, until it is not.
    page.click("#resend-box button")
    expect(page.locator(".messagelist")).to_contain_text(f"Trigger {trigger.pk} re-sent as trigger")
    resend = Trigger.objects.get(resend_of=trigger)
    Trigger.objects.filter(pk=resend.pk).update(status=Trigger.Status.SENDING)
    page.goto(f"{live_server.url}/console/triggers/{trigger.pk}/")
    expect(page.locator("#resend-box")).to_contain_text(f"Trigger #{resend.pk} of this chain is still on its way")

    Trigger.objects.filter(pk=resend.pk).update(status=Trigger.Status.SUCCEEDED)

    expect(page.locator("#resend-box")).to_contain_text(
        f"This chain already reached the customer (trigger #{resend.pk} succeeded)", timeout=LIVE)
    expect(page.locator("#chain")).to_contain_text("succeeded")
    expect(page.locator("#trigger-live")).to_have_attribute("data-final", "true")
