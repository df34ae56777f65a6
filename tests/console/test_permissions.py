"""Who may open what: generated from the console's URLconf, plus the admin's credential and org tool pages."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from flows.models import ExternalClientApp, ResendJob, Trigger
from flows.roles import CREDENTIAL_MODELS
from flows.webhooks.models import ShopifyWebhook, WebhookDelivery
from tests.conftest import CONSUMER_KEY, CONSUMER_SECRET, make_flow, make_org

from .conftest import logged_in, make_trigger

# Every console URL, by the method its page answers. A URL added to the console without an entry here fails
# test_every_console_url_is_covered, so its permissions get checked too.
METHODS = {
    "triggers": "GET",
    "trigger": "GET",
    "trigger_live": "GET",
    "trigger_resend": "POST",
    "trigger_mark_delivered": "POST",
    "triggers_resend": "POST",
    "triggers_resend_all": "GET",
    "jobs": "GET",
    "job": "GET",
    "flow_fire": "GET",
    "dashboard": "GET",
    "deliveries": "GET",
    "delivery": "GET",
    "delivery_replay": "POST",
    "deliveries_replay": "POST",
    "deliveries_replay_held": "GET",
}
# Which sample row a URL's <int:pk> is, by the route's first segment.
SAMPLE_BY_SEGMENT = {"triggers": "trigger", "jobs": "job", "flows": "flow", "deliveries": "delivery"}
# Pages that need a query to show themselves (the name of the sample row it carries, as the parameter's name).
QUERY_SAMPLE = {"deliveries_replay_held": "webhook"}


def _patterns(resolver: URLResolver, prefix: str = ""):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from _patterns(pattern, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield pattern.name, prefix + str(pattern.pattern), list(pattern.pattern.converters)


def console_urls() -> list[tuple[str, str, list[str]]]:
    _, resolver = get_resolver().namespace_dict["console"]
    return sorted(_patterns(resolver))


CONSOLE_URLS = console_urls()
IDS = [name for name, _, _ in CONSOLE_URLS]


@pytest.fixture
def samples(db) -> dict[str, int]:
    """A real row for each kind of pk the console's URLs take."""
    org = make_org()
    flow = make_flow(org)
    trigger = make_trigger(flow)
    job = ResendJob.objects.create(filters={"status": "failed"}, max_trigger_id=trigger.pk, total=1)
    webhook = ShopifyWebhook.objects.create(name="Shop", slug="shop", shop_domains="acme.myshopify.com",
                                            secret="shpss_webhook-secret-0123456789")
    delivery = WebhookDelivery.objects.create(
        webhook=webhook, shopify_webhook_id="b54557e4-1", topic="orders/create", shop_domain="acme.myshopify.com",
        signed_with=WebhookDelivery.SignedWith.CURRENT, outcome=WebhookDelivery.Outcome.TRIGGERED, trigger=trigger,
        body='{"id": 1}', body_bytes=9,
    )
    return {"trigger": trigger.pk, "job": job.pk, "flow": flow.pk, "delivery": delivery.pk, "webhook": webhook.pk}


def url_for(name: str, route: str, kwargs: list[str], samples: dict[str, int]) -> str:
    values = {}
    for kwarg in kwargs:
        segment = route.strip("/").split("/")[0]
        assert kwarg == "pk" and segment in SAMPLE_BY_SEGMENT, f"no sample row for {route!r}: add one to this test"
        values[kwarg] = samples[SAMPLE_BY_SEGMENT[segment]]
    url = reverse(f"console:{name}", kwargs=values)
    if sample := QUERY_SAMPLE.get(name):
        url += f"?{sample}={samples[sample]}"
    return url


def call(client: Client, method: str, url: str):
    return client.post(url) if method == "POST" else client.get(url)


def test_every_console_url_is_covered():
    assert len(CONSOLE_URLS) >= 10
    assert set(IDS) == set(METHODS), "classify each console URL in METHODS"


@pytest.mark.parametrize("name, route, kwargs", CONSOLE_URLS, ids=IDS)
def test_anonymous_is_sent_to_the_admin_login(client, samples, name, route, kwargs):
    url = url_for(name, route, kwargs, samples)
    before = Trigger.objects.count()

    response = call(client, METHODS[name], url)

    assert response.status_code == 302
    target = urlsplit(response.url)
    assert target.path == reverse("admin:login")
    assert parse_qs(target.query)["next"] == [url]
    assert Trigger.objects.count() == before


@pytest.mark.parametrize("name, route, kwargs", CONSOLE_URLS, ids=IDS)
def test_staff_without_a_group_gets_403(dave, samples, name, route, kwargs):
    before = Trigger.objects.count()

    response = call(logged_in(dave), METHODS[name], url_for(name, route, kwargs, samples))

    assert response.status_code == 403
    assert Trigger.objects.count() == before


GET_PAGES = [(n, r, k) for n, r, k in CONSOLE_URLS if METHODS.get(n) == "GET"]
POST_ONLY = [(n, r, k) for n, r, k in CONSOLE_URLS if METHODS.get(n) == "POST"]


@pytest.mark.parametrize("name, route, kwargs", GET_PAGES, ids=[n for n, _, _ in GET_PAGES])
def test_support_opens_every_console_page_and_sees_no_secret(as_bob, samples, name, route, kwargs):
    response = as_bob.get(url_for(name, route, kwargs, samples))

    assert response.status_code == 200
    html = response.content.decode()
    for secret in (CONSUMER_KEY, CONSUMER_SECRET, "shpss_webhook-secret"):
        assert secret not in html


@pytest.mark.parametrize("name, route, kwargs", GET_PAGES, ids=[n for n, _, _ in GET_PAGES])
def test_alice_opens_every_console_page(as_alice, samples, name, route, kwargs):
    assert as_alice.get(url_for(name, route, kwargs, samples)).status_code == 200


@pytest.mark.parametrize("name, route, kwargs", POST_ONLY, ids=[n for n, _, _ in POST_ONLY])
def test_post_only_views_refuse_get(as_alice, samples, name, route, kwargs):
    before = Trigger.objects.count()

    response = as_alice.get(url_for(name, route, kwargs, samples))

    assert response.status_code == 405
    assert Trigger.objects.count() == before


@pytest.fixture
def viewer(dave):
    """Staff who may see triggers and re-send jobs, even start one, but not re-send: only flows.resend_trigger is
    missing, so each check below fails only if that permission is checked."""
    from django.contrib.auth.models import Permission

    dave.user_permissions.add(*Permission.objects.filter(
        codename__in=["view_trigger", "view_resendjob", "add_resendjob", "view_flow"]))
    return logged_in(dave)


@pytest.mark.parametrize("name, method", [
    ("trigger_resend", "POST"), ("trigger_mark_delivered", "POST"), ("triggers_resend", "POST"),
    ("triggers_resend_all", "GET"), ("triggers_resend_all", "POST"),
])
def test_staff_without_the_resend_permission_gets_403_and_nothing_changes(viewer, flow, name, method):
    failed = make_trigger(flow)
    unknown = make_trigger(flow, status=Trigger.Status.UNKNOWN, error_code="TIMEOUT")
    url = reverse(f"console:{name}", args=[unknown.pk if name == "trigger_mark_delivered" else failed.pk]
                  if name.startswith("trigger_") else [])
    data = {"ids": [failed.pk, unknown.pk], "status": "", "confirm": "yes"}

    assert viewer.get(reverse("console:trigger", args=[failed.pk])).status_code == 200  # it may look, though
    response = viewer.post(url, data) if method == "POST" else viewer.get(url, data)

    assert response.status_code == 403
    assert sorted(Trigger.objects.values_list("pk", "status")) == [(failed.pk, "failed"), (unknown.pk, "unknown")]
    assert not ResendJob.objects.exists()


def test_a_post_without_a_csrf_token_is_refused(bob, samples):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(bob)
    url = reverse("console:trigger_resend", args=[samples["trigger"]])

    response = strict.post(url)

    assert response.status_code == 403
    assert Trigger.objects.count() == 1  # nothing re-sent


def test_a_post_with_the_csrf_token_goes_through(bob, samples):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(bob)
    page = strict.get(reverse("console:trigger", args=[samples["trigger"]]))
    token = page.context["csrf_token"]

    response = strict.post(reverse("console:trigger_resend", args=[samples["trigger"]]),
                           {"csrfmiddlewaretoken": str(token)})

    assert response.status_code == 302
    assert Trigger.objects.filter(resend_of_id=samples["trigger"]).count() == 1


# --- the admin: credentials and the org's tools -------------------------------------------------------


def credential_pages() -> list[str]:
    registered = {model._meta.model_name for model in admin.site._registry}
    return sorted(
        f"admin:flows_{model}_{view}"
        for model in CREDENTIAL_MODELS if model in registered
        for view in ("changelist", "add")
    )


@pytest.mark.parametrize("page", credential_pages())
def test_credential_lists_and_forms_are_for_admins_only(as_bob, as_alice, page):
    assert as_bob.get(reverse(page)).status_code == 403
    assert as_alice.get(reverse(page)).status_code == 200


def test_the_client_app_page_is_for_admins_only(as_bob, as_alice, org):
    url = reverse("admin:flows_externalclientapp_change", args=[org.client_apps.get().pk])

    assert as_bob.get(url).status_code == 403
    assert as_bob.post(url, {"new_consumer_secret": "stolen"}).status_code == 403
    assert as_alice.get(url).status_code == 200
    assert ExternalClientApp.objects.get().consumer_secret.reveal() == CONSUMER_SECRET


def test_an_admin_group_member_reaches_the_credentials_too(org):
    from tests.conftest import admin_user

    carol = logged_in(admin_user("carol"))

    assert carol.get(reverse("admin:flows_externalclientapp_changelist")).status_code == 200
    assert carol.get(reverse("admin:flows_externalclientapp_change",
                             args=[org.client_apps.get().pk])).status_code == 200


def test_support_sees_the_org_page_without_credentials_or_tools(as_bob, as_alice, org):
    url = reverse("admin:flows_org_change", args=[org.pk])

    response = as_bob.get(url)

    assert response.status_code == 200
    html = response.content.decode()
    assert org.my_domain_url in html  # the page itself is there ...
    assert "consumer" not in html.lower()  # ... but no credential field, not even its label
    assert "Test connection" not in html
    assert reverse("admin:flows_org_import", args=[org.pk]) not in html
    # the same page for alice has them: the check above is not vacuous
    admin_html = as_alice.get(url).content.decode()
    assert "consumer" in admin_html.lower() and "Test connection" in admin_html


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("page", ["test_connection", "import", "import_preview"])
def test_support_may_not_test_a_connection_or_import(as_bob, org, page, method):
    args = [org.pk, "On_Demand_Flow"] if page == "import_preview" else [org.pk]

    response = getattr(as_bob, method)(reverse(f"admin:flows_org_{page}", args=args))

    assert response.status_code == 403


def test_support_may_not_fire_from_the_admin_without_the_permission(dave, flow):
    assert logged_in(dave).get(reverse("admin:flows_flow_fire", args=[flow.pk])).status_code == 403
