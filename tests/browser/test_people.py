"""The people's side, in a real browser: alice the admin, bob from support."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from flows import services
from flows.models import ExternalClientApp, Org, ResendJob, Trigger
from sfemu import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET
from tests.conftest import admin_user, make_flow, make_org, support_user, wait_final

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
LIVE = 30_000  # ms: the worker and the emulator answer within a second; the slack is for a busy CI machine


def open_org(page: Page, live_server, org: Org) -> None:
    page.goto(f"{live_server.url}/admin/flows/org/{org.pk}/change/")


def test_alice_registers_an_org_tests_it_imports_a_flow_and_fires_it(page, live_server, login, emulator, worker):
    admin_user("alice", "alice-password-1")
    login("alice", "alice-password-1")

    page.goto(f"{live_server.url}/admin/flows/org/add/")
    page.fill("#id_name", "Acme Shop")
    page.fill("#id_my_domain_url", emulator.url)
    page.fill("#id_api_version", "v65.0")
    page.fill("#id_client_apps-0-name", "Flowgate")
    page.fill("#id_client_apps-0-new_consumer_key", DEFAULT_CONSUMER_KEY)
    page.fill("#id_client_apps-0-new_consumer_secret", DEFAULT_CONSUMER_SECRET)
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    org = Org.objects.get(slug="acme-shop")
    app = ExternalClientApp.objects.get(org=org)
    assert app.consumer_secret.reveal() == DEFAULT_CONSUMER_SECRET
    assert DEFAULT_CONSUMER_SECRET not in page.content()

    page.click("text=Test connection")
    expect(page.locator("#connection-result")).to_contain_text("Connected.")
    expect(page.locator("#connection-result")).to_contain_text("v66.0")

    page.click("text=Import flows")
    page.locator("tr", has_text="On_Demand_Flow").get_by_role("link", name="Import…").click()
    expect(page.locator("#import-inputs")).to_contain_text("IndividualId")
    page.click("input[value='Import this flow']")
    flow = org.flows.get(api_name="On_Demand_Flow")
    assert [(i.name, i.required) for i in flow.inputs.all()] == [
        ("EmailAddress", False), ("IndividualId", True), ("TelephoneNumber", False)]

    page.click("text=Fire this flow")
    page.fill("#id_IndividualId", "003ALICE")
    page.fill("#id_EmailAddress", "ada@example.com")
    page.click("input[value='Fire flow']")

    expect(page.locator("#trigger-live .status")).to_have_text("succeeded", timeout=LIVE)
    expect(page.locator("#trigger-live")).to_contain_text('"EmailAddress": "ada@example.com"')
    trigger = Trigger.objects.get(flow=flow)
    assert (trigger.source, trigger.actor.username, trigger.status) == ("admin", "alice", "succeeded")


def test_a_token_error_shows_what_to_fix(page, live_server, login, emulator):
    admin_user("alice", "alice-password-1")
    org = make_org(slug="wrong", url=emulator.url, key=DEFAULT_CONSUMER_KEY, secret="not-the-secret-at-all")
    login("alice", "alice-password-1")

    open_org(page, live_server, org)
    page.click("text=Test connection")

    expect(page.locator("#connection-result")).to_contain_text("invalid_client")
    expect(page.locator(".hint")).to_contain_text("The consumer secret is wrong")
    assert org.exchanges.filter(kind="token", response_status=400).count() == 1


def test_a_firing_error_is_shown_next_to_its_field(page, live_server, login, emulator):
    admin_user("alice", "alice-password-1")
    flow = make_flow(make_org(slug="emu", url=emulator.url))
    login("alice", "alice-password-1")

    page.goto(f"{live_server.url}/console/flows/{flow.pk}/fire/")
    page.fill("#id_EmailAddress", "ada@example.com")
    page.click("input[value='Fire flow']")

    expect(page.locator(".form-row.errors")).to_contain_text("This field is required")
    assert Trigger.objects.count() == 0


def test_bob_finds_a_failed_confirmation_by_email_and_resends_it(page, live_server, login, emulator, worker,
                                                                  emu_flow):
    original = wait_final(services.trigger_create(
        flow=emu_flow, inputs={"IndividualId": "FAIL-77", "EmailAddress": "grace@example.com"},
        source=Trigger.Source.API, actor_label="shop"))
    other = wait_final(services.trigger_create(
        flow=emu_flow, inputs={"IndividualId": "FAIL-78", "EmailAddress": "alan@example.com"},
        source=Trigger.Source.API, actor_label="shop"))
    assert original.status == other.status == Trigger.Status.FAILED
    emulator.emulator.configure(fail_prefix="NEVER")  # whatever failed is fixed on Salesforce's side now
    bob = support_user()
    login("bob", "bob-password-1")

    page.fill("#id_q", "grace@example.com")
    page.click("input[value=Filter]")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(f"#{original.pk}")
    rows.first.get_by_role("button", name="Re-send").click()

    expect(page.locator("#trigger-live .status")).to_have_text("succeeded", timeout=LIVE)
    resend = Trigger.objects.get(resend_of=original)
    assert page.url.endswith(f"/console/triggers/{resend.pk}/")
    assert (resend.source, resend.actor, resend.inputs) == ("resend", bob, original.inputs)

    # Once more: it already has a successful re-send, so bob is asked before the customer gets it twice.
    page.goto(f"{live_server.url}/console/triggers/{original.pk}/")
    page.get_by_role("button", name="Re-send").click()
    expect(page.locator("h1")).to_contain_text("again?")
    assert Trigger.objects.filter(resend_of=original).count() == 1


def test_bob_resends_every_trigger_matching_a_filter(page, live_server, login, emulator, worker, emu_flow):
    Trigger.objects.bulk_create([
        Trigger(flow=emu_flow, inputs={"IndividualId": f"FAIL-{n:03}"}, status=Trigger.Status.FAILED,
                source=Trigger.Source.WEBHOOK, attempts=1, error_code="UNKNOWN_EXCEPTION")
        for n in range(50)
    ])
    Trigger.objects.create(flow=emu_flow, inputs={"IndividualId": "003OK"}, status=Trigger.Status.SUCCEEDED,
                           source=Trigger.Source.WEBHOOK)
    emulator.emulator.configure(fail_prefix="NEVER")
    support_user()
    login("bob", "bob-password-1")

    page.goto(f"{live_server.url}/console/?status=failed&flow={emu_flow.pk}")
    page.click("text=Re-send all matching this filter…")
    expect(page.locator("#content")).to_contain_text("50 triggers match")
    page.get_by_role("button", name="Re-send 50 triggers").click()

    assert re.search(r"/console/jobs/\d+/$", page.url)
    page.reload()  # progress lives in the database, not in the page
    expect(page.locator("#job-pending")).to_have_text("0", timeout=60_000)
    expect(page.locator("#job-succeeded")).to_have_text("50", timeout=LIVE)
    expect(page.locator("#job-failed")).to_have_text("0")
    job = ResendJob.objects.get()
    assert (job.status, job.total, job.processed, job.resent, job.skipped) == ("done", 50, 50, 50, 0)
    assert Trigger.objects.filter(resend_job=job, status=Trigger.Status.SUCCEEDED).count() == 50
    assert emulator.emulator.snapshot()["invoked_inputs"] == 50


def test_bob_never_reaches_credentials(page, live_server, login, emulator):
    org = make_org(slug="emu", url=emulator.url)
    app = org.client_apps.get()
    support_user()
    login("bob", "bob-password-1")

    for path in ("/admin/flows/externalclientapp/", f"/admin/flows/externalclientapp/{app.pk}/change/",
                 "/admin/flows/externalclientapp/add/", f"/admin/flows/org/{org.pk}/test-connection/"):
        assert page.goto(f"{live_server.url}{path}").status == 403, path

    assert page.goto(f"{live_server.url}/admin/flows/org/{org.pk}/change/").status == 200
    html = page.content()
    assert app.consumer_key.reveal() not in html and app.consumer_secret.reveal() not in html
    assert "consumer" not in html.lower()
