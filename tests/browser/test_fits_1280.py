"""Every admin and console page fits a 1,280 px window (issue 12, friction 3): no page wider than the window, no
list whose columns hide under the filter sidebar or scroll sideways. Filled with long names, as real orgs have."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.urls import reverse
from playwright.sync_api import Page

from flows.api.services import api_key_create
from flows.models import Exchange, FlowInput, ResendJob, Trigger
from flows.webhooks.models import ShopifyTopic, ShopifyWebhook, WebhookDelivery
from tests.conftest import admin_user, make_flow, make_org, support_user

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
WIDTH = 1280


def seed() -> dict[str, int]:
    org = make_org(slug="acme-retail-europe")
    org.name = "Acme Retail Europe (production org, EU instance)"
    org.api_usage_used, org.api_usage_max = 48213, 100000
    org.save()
    flow = make_flow(org, "Order_Confirmation_SMS_and_Email_Europe")
    for n in range(6):
        FlowInput.objects.create(flow=flow, name=f"SomeRatherLongInputName{n}", order=10 + n, required=n % 2 == 0,
                                 description="A description as long as the ones Salesforce admins write, "
                                             "explaining where the value comes from and what the flow does.")
    trigger = None
    for n in range(30):
        trigger = Trigger.objects.create(
            flow=flow, inputs={"IndividualId": f"003Ho00002AlRM{n:04}", "EmailAddress": f"customer{n}@example.com"},
            source=Trigger.Source.API if n % 2 else Trigger.Source.CONSOLE, status=Trigger.Status.FAILED,
            attempts=3, error_code="CANNOT_EXECUTE_FLOW_TRIGGER", error_message="The flow failed. " * 5)
        Exchange.objects.create(org=org, trigger=trigger, kind=Exchange.Kind.INVOKE, method="POST",
                                url=f"{org.my_domain_url}/services/data/v65.0/actions/custom/flow/{flow.api_name}",
                                response_status=400)
    ResendJob.objects.create(filters={"status": "failed", "q": "customer1@example.com"}, max_trigger_id=trigger.pk,
                             total=30)
    api_key_create(name="ERP nightly synchronisation (Europe)", flows=[flow])
    webhook = ShopifyWebhook.objects.create(name="Acme Europe Shopify store", slug="acme-europe-store",
                                            shop_domains="acme-europe.myshopify.com", secret="s" * 32)
    ShopifyTopic.objects.create(webhook=webhook, topic="orders/create", flow=flow,
                                mapping={"IndividualId": "customer.id", "EmailAddress": "email"})
    WebhookDelivery.objects.create(webhook=webhook, shopify_webhook_id="b5f6c3e1-long-delivery-id-0001",
                                   topic="orders/create", shop_domain="acme-europe.myshopify.com",
                                   outcome=WebhookDelivery.Outcome.TRIGGERED, trigger=trigger, body="{}", body_bytes=2)
    return {"flows.flow": flow.pk, "flows.org": org.pk, "flows.trigger": trigger.pk}


def overflow(page: Page) -> dict:
    return page.evaluate("""() => {
        const results = document.querySelector('#changelist .results');
        return {page: document.documentElement.scrollWidth,
                list: results ? results.scrollWidth - results.clientWidth : 0};
    }""")


def admin_pages(samples: dict[str, int]) -> list[str]:
    pages = ["/admin/"]
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label_lower
        info = (model._meta.app_label, model._meta.model_name)
        pages.append(reverse("admin:%s_%s_changelist" % info))
        if model_admin.has_add_permission is not None and label not in ("flows.trigger", "flows.exchange",
                                                                          "flows.resendjob", "flows.webhookdelivery"):
            pages.append(reverse("admin:%s_%s_add" % info))
        first = model.objects.order_by("pk").values_list("pk", flat=True).first()
        if first is not None:
            pages.append(reverse("admin:%s_%s_change" % info, args=[samples.get(label, first)]))
    return pages


def test_every_admin_page_fits_1280_px_for_alice(page, live_server, login):
    samples = seed()
    admin_user("alice", "alice-password-1")
    login("alice", "alice-password-1")
    page.set_viewport_size({"width": WIDTH, "height": 900})

    too_wide = {}
    for path in admin_pages(samples):
        page.goto(f"{live_server.url}{path}")
        measured = overflow(page)
        if measured["page"] > WIDTH or measured["list"] > 2:
            too_wide[path] = measured

    assert too_wide == {}, "pages wider than the window, or lists scrolling sideways (px)"
    # Friction 7: from every admin page, the console, its dashboard and the re-send jobs are one click away.
    page.goto(f"{live_server.url}/admin/flows/trigger/")
    for name, path in (("Console", "/console/"), ("Dashboard", "/console/dashboard/"), ("Re-send jobs", "/console/jobs/")):
        assert page.locator("#user-tools").get_by_role("link", name=name).get_attribute("href") == path
    # Friction 6: the admin shows a moment as the console does, with its zone.
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", page.locator("td.field-created_at").first.inner_text())


def test_every_console_page_fits_1280_px_for_bob(page, live_server, login):
    samples = seed()
    support_user("bob", "bob-password-1")
    login("bob", "bob-password-1")
    page.set_viewport_size({"width": WIDTH, "height": 900})

    too_wide = {}
    for path in ["/console/", f"/console/triggers/{samples['flows.trigger']}/", "/console/dashboard/",
                 "/console/jobs/", f"/console/jobs/{ResendJob.objects.get().pk}/", "/console/deliveries/",
                 f"/console/deliveries/{WebhookDelivery.objects.get().pk}/",
                 f"/console/flows/{samples['flows.flow']}/fire/", "/console/triggers/resend-all/?status=failed"]:
        page.goto(f"{live_server.url}{path}")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > WIDTH:
            too_wide[path] = width

    assert too_wide == {}
    # Friction 6: one format, the zone shown, the exact time on hover; sources spelt one way.
    page.goto(f"{live_server.url}/console/?status=failed")
    moment = page.locator("#result_list time").first
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", moment.inner_text())
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} UTC", moment.get_attribute("title"))
    assert set(page.locator("#result_list td:nth-child(6)").all_inner_texts()) <= {"API", "Console"}
    assert page.locator("#user-tools").get_by_role("link", name="Admin").get_attribute("href") == "/admin/"
