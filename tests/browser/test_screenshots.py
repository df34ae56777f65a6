"""Every picture in the README: the console, a trigger page, the fire form, the dashboard, a re-send job's
progress, the Test connection result and the import preview, at 1,280 px. `make screenshots` writes them to
docs/screenshots for the README; `make test` writes them to a temporary folder, so they keep working."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from flows import services
from flows.models import Trigger
from tests.conftest import admin_user, wait_final

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = ("console.png", "fire-form.png", "trigger.png", "dashboard.png", "job.png", "connection.png",
               "import-preview.png")


def test_the_readme_shows_every_screenshot_and_each_is_committed():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    shown = set(re.findall(r"docs/screenshots/([\w.-]+\.png)", readme))

    assert shown == set(SCREENSHOTS)
    for name in shown:
        assert (Path(__file__).resolve().parents[2] / "docs" / "screenshots" / name).is_file(), name


def test_screenshots(page, live_server, login, emulator, worker, emu_flow, tmp_path):
    folder = Path(os.environ.get("FLOWGATE_SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    emu_flow.description = "Sends the order confirmation by email and SMS."
    emu_flow.save()
    people = [("ada@example.com", "003Ho00002AlRM8IAN"), ("grace@example.com", "FAIL-0042"),
              ("alan@example.com", "003Ho00002AlRM9XYZ"), ("edsger@example.com", "FAIL-0043")]
    for email, individual in people:
        wait_final(services.trigger_create(flow=emu_flow, inputs={"EmailAddress": email, "IndividualId": individual},
                                           source=Trigger.Source.WEBHOOK, actor_label="shopify demo"))
    admin_user("alice", "alice-password-1")
    page.set_viewport_size({"width": 1280, "height": 800})
    login("alice", "alice-password-1")

    page.goto(f"{live_server.url}/console/")
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    page.screenshot(path=folder / "console.png", full_page=True)

    page.goto(f"{live_server.url}/console/flows/{emu_flow.pk}/fire/")
    page.fill("#id_EmailAddress", "barbara@example.com")
    page.screenshot(path=folder / "fire-form.png", full_page=True)
    page.fill("#id_IndividualId", "003Ho00002AlRM7ABC")
    page.click("input[value='Fire flow']")
    expect(page.locator("#trigger-live .status")).to_have_text("succeeded", timeout=30_000)
    page.screenshot(path=folder / "trigger.png", full_page=True)

    page.goto(f"{live_server.url}/console/dashboard/")
    page.screenshot(path=folder / "dashboard.png", full_page=True)

    page.goto(f"{live_server.url}/console/triggers/resend-all/?status=failed")
    page.click("button:has-text('Re-send')")
    expect(page.locator("#job-live")).to_have_attribute("data-final", "true", timeout=30_000)
    page.screenshot(path=folder / "job.png", full_page=True)

    page.goto(f"{live_server.url}/admin/flows/org/{emu_flow.org.pk}/change/")
    page.click("text=Test connection")
    expect(page.locator("#connection-result")).to_contain_text("Connected.")
    page.screenshot(path=folder / "connection.png", full_page=True)

    page.goto(f"{live_server.url}/admin/flows/org/{emu_flow.org.pk}/import-flows/On_Demand_Flow/")
    expect(page.locator("#import-inputs")).to_contain_text("IndividualId")
    page.screenshot(path=folder / "import-preview.png", full_page=True)

    for name in SCREENSHOTS:
        picture = (folder / name).read_bytes()
        assert picture.startswith(b"\x89PNG") and len(picture) > 10_000, name
