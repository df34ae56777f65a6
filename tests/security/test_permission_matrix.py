"""Who may open what, generated from the URL configuration.

Every URL pattern the project serves (walked recursively from the root URLconf) must have an entry in ROUTES,
with the status each persona gets: a URL added without one fails test_every_url_has_an_expectation, so nobody
can add a page, an admin, an API endpoint or a webhook without deciding who may reach it.

Personas: anonymous; bob from Support; alice of "Flowgate admins" (not a superuser); an API key scoped to another
flow; an API key scoped to the sample flow; a caller that signs with the Shopify webhook's secret. A key or a
signature never opens a session page, and a session never authenticates the API or a webhook.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse

from flows.api.services import api_key_create
from flows.models import Exchange, Org, ResendJob, Trigger
from flows.roles import CREDENTIAL_MODELS, SUPPORT
from flows.webhooks.models import ShopifyTopic, ShopifyWebhook, WebhookDelivery
from tests.conftest import CONSUMER_KEY, CONSUMER_SECRET, MY_DOMAIN, admin_user, make_flow, make_org, support_user
from tests.webhooks.conftest import DEMO_MAPPING, SECRET, SHOP, fixture_body, shopify_headers

from .conftest import logged_in

pytestmark = pytest.mark.django_db

PERSONAS = ("anonymous", "support", "admin", "other_key", "flow_key", "shopify")
LOGIN = "login"  # a 302 to the admin's login page, with ?next= the page that was asked for
Expect = dict[str, Any]


def staff(support: int, admin: int) -> Expect:
    """A session page: only logged-in staff get past the login; a key or a signature opens nothing."""
    return {"anonymous": LOGIN, "other_key": LOGIN, "flow_key": LOGIN, "shopify": LOGIN,
            "support": support, "admin": admin}


def api(flow_key: int) -> Expect:
    """An API endpoint: a session is no credential (401); to a key for another flow, the flow and its triggers do
    not exist (404, as for a flow that really does not)."""
    return {"anonymous": 401, "support": 401, "admin": 401, "shopify": 401, "other_key": 404, "flow_key": flow_key}


def everyone(status: int) -> Expect:
    return dict.fromkeys(PERSONAS, status)


INPUTS = {"IndividualId": "003Ho00002AlRM8IAN", "EmailAddress": "ada@example.com"}
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Probe:
    """One request: `path` is formatted with the sample rows' ids (see `world`)."""

    path: str
    expect: Expect
    method: str = "GET"
    body: bytes = b""
    content_type: str = FORM


def get(path: str, expect: Expect) -> Probe:
    return Probe(path, expect)


def post(path: str, expect: Expect, body: bytes = b"", content_type: str = FORM) -> Probe:
    return Probe(path, expect, "POST", body, content_type)


# --- the admin's model pages, per registered model --------------------------------------------------------

FULL = {"changelist": 200, "add": 200, "change": 200, "history": 200, "delete": 200}
VIEW_ONLY = {"changelist": 200, "add": 403, "change": 200, "history": 200, "delete": 403}
NOTHING = dict.fromkeys(FULL, 403)
# Registered model -> (what Support gets, what Flowgate admins get). Credential models are NOTHING for Support
# (checked against flows.roles.CREDENTIAL_MODELS below); triggers, exchanges, re-send jobs and deliveries are
# records, read-only for everyone.
MODEL_ACCESS: dict[str, tuple[dict[str, int], dict[str, int]]] = {
    "auth.group": (NOTHING, FULL),
    "auth.user": (NOTHING, FULL),
    "flows.externalclientapp": (NOTHING, FULL),
    "flows.apikey": (NOTHING, FULL),
    "flows.shopifywebhook": (NOTHING, FULL),
    "flows.org": (VIEW_ONLY, FULL),
    "flows.flow": (VIEW_ONLY, FULL),
    "flows.trigger": (VIEW_ONLY, VIEW_ONLY),
    "flows.exchange": (VIEW_ONLY, VIEW_ONLY),
    "flows.resendjob": (VIEW_ONLY, VIEW_ONLY),
    "flows.webhookdelivery": (VIEW_ONLY, VIEW_ONLY),
}


def model_routes(label: str) -> dict[str, list[Probe]]:
    """The six routes a ModelAdmin serves, as Django names them, with the sample row of that model."""
    support, admin_ = MODEL_ACCESS[label]
    app, model = label.split(".")
    base, sample = f"admin/{app}/{model}/", f"{{{app}_{model}}}"
    pages = {"changelist": ("", ""), "add": ("add/", "add/"), "history": ("<path:object_id>/history/",
                                                                          f"{sample}/history/"),
             "delete": ("<path:object_id>/delete/", f"{sample}/delete/"),
             "change": ("<path:object_id>/change/", f"{sample}/change/")}
    routes = {base + route: [get(f"/{base}{path}", staff(support[page], admin_[page]))]
              for page, (route, path) in pages.items()}
    # <id>/ only redirects to <id>/change/ (which answers as above), for any staff member.
    routes[f"{base}<path:object_id>/"] = [get(f"/{base}{sample}/", staff(302, 302))]
    return routes


API_TRIGGERS = "/api/v1/flows/acme/On_Demand_Flow/triggers"

ROUTES: dict[str, list[Probe]] = {
    "": [get("/", everyone(302))],  # to the console, which then asks for a login
    # --- the admin site ---
    "admin/": [get("/admin/", staff(200, 200))],
    "admin/login/": [get("/admin/login/", {**everyone(200), "support": 302, "admin": 302})],
    # Logging out takes a POST (a link cannot log anyone out); whoever is not staff is sent to the index.
    "admin/logout/": [get("/admin/logout/", {**everyone(302), "support": 405, "admin": 405}),
                      post("/admin/logout/", {**everyone(302), "support": 200, "admin": 200})],
    "admin/password_change/": [get("/admin/password_change/", staff(200, 200))],
    "admin/password_change/done/": [get("/admin/password_change/done/", staff(200, 200))],
    # Autocomplete answers with the related model's rows to whoever may view that model: orgs to Support,
    # but not the list of users.
    "admin/autocomplete/": [get("/admin/autocomplete/?app_label=flows&model_name=flow&field_name=org",
                                staff(200, 200)),
                            get("/admin/autocomplete/?app_label=flows&model_name=trigger&field_name=actor",
                                staff(403, 200))],
    "admin/jsi18n/": [get("/admin/jsi18n/", staff(200, 200))],
    "admin/r/<path:content_type_id>/<path:object_id>/": [get("/admin/r/{ct_org}/{flows_org}/", staff(404, 404))],
    "admin/(?P<app_label>auth|flows)/$": [get("/admin/flows/", staff(200, 200)),
                                          get("/admin/auth/", staff(404, 200))],
    "admin/(?P<url>.*)$": [get("/admin/no-such-page/", staff(404, 404))],
    "admin/auth/user/<id>/password/": [get("/admin/auth/user/{auth_user}/password/", staff(403, 200))],
    **{route: probes for label in MODEL_ACCESS for route, probes in model_routes(label).items()},
    # --- the admin's own tools: they use the org's credentials, so Support gets 403 whatever the method ---
    "admin/flows/org/<int:pk>/test-connection/": [
        get("/admin/flows/org/{org}/test-connection/", staff(403, 302)),  # GET only leads back to the org
        post("/admin/flows/org/{org}/test-connection/", staff(403, 200)),
    ],
    "admin/flows/org/<int:pk>/import-flows/": [get("/admin/flows/org/{org}/import-flows/", staff(403, 200))],
    "admin/flows/org/<int:pk>/import-flows/<str:api_name>/": [
        get("/admin/flows/org/{org}/import-flows/On_Demand_Flow/", staff(403, 200)),
        post("/admin/flows/org/{org}/import-flows/On_Demand_Flow/", staff(403, 302)),
    ],
    "admin/flows/flow/<int:pk>/fire/": [get("/admin/flows/flow/{flow}/fire/", staff(200, 200))],
    # --- the console ---
    "console/": [get("/console/", staff(200, 200))],
    "console/triggers/<int:pk>/": [get("/console/triggers/{trigger}/", staff(200, 200))],
    "console/triggers/<int:pk>/live/": [get("/console/triggers/{trigger}/live/", staff(200, 200))],
    "console/triggers/<int:pk>/resend/": [post("/console/triggers/{trigger}/resend/", staff(302, 302))],
    # The sample trigger failed: nothing to mark, both are sent back to its page with a message saying so.
    "console/triggers/<int:pk>/mark-delivered/": [post("/console/triggers/{trigger}/mark-delivered/",
                                                       staff(302, 302))],
    "console/triggers/resend/": [post("/console/triggers/resend/", staff(302, 302))],
    "console/triggers/resend-all/": [get("/console/triggers/resend-all/?status=failed", staff(200, 200))],
    "console/jobs/": [get("/console/jobs/", staff(200, 200))],
    "console/jobs/<int:pk>/": [get("/console/jobs/{job}/", staff(200, 200))],
    "console/flows/<int:pk>/fire/": [get("/console/flows/{flow}/fire/", staff(200, 200))],
    "console/dashboard/": [get("/console/dashboard/", staff(200, 200))],
    "console/deliveries/": [get("/console/deliveries/", staff(200, 200))],
    "console/deliveries/<int:pk>/": [get("/console/deliveries/{delivery}/", staff(200, 200))],
    "console/deliveries/<int:pk>/replay/": [post("/console/deliveries/{delivery}/replay/", staff(302, 302))],
    "console/deliveries/replay/": [post("/console/deliveries/replay/", staff(302, 302))],
    "console/deliveries/replay-held/": [
        get("/console/deliveries/replay-held/?webhook={flows_shopifywebhook}", staff(200, 200)),
        post("/console/deliveries/replay-held/", staff(302, 302), b"webhook=1")],
    # --- the JSON API ---
    "api/v1/flows/<str:org_slug>/<str:flow_api_name>/triggers": [
        post(API_TRIGGERS, api(202), json.dumps({"inputs": INPUTS}).encode(), JSON)],
    "api/v1/flows/<str:org_slug>/<str:flow_api_name>/triggers/batch": [
        post(f"{API_TRIGGERS}/batch", api(207), json.dumps({"items": [{"inputs": INPUTS}]}).encode(), JSON)],
    "api/v1/triggers/<str:trigger_id>": [get("/api/v1/triggers/{trigger}", api(200))],
    "api/v1/openapi.json": [get("/api/v1/openapi.json", everyone(200))],  # public: describes, holds no data
    "api/v1/(?P<rest>.*)$": [get("/api/v1/no-such-endpoint", everyone(404))],
    # --- webhooks: only the signature counts ---
    "hooks/shopify/<str:slug>": [post("/hooks/shopify/acme-store", {**everyone(401), "shopify": 200},
                                      fixture_body(), JSON)],
}


# --- the URL configuration, walked ---------------------------------------------------------------------


def _join(prefix: str, route: str) -> str:
    """As Django joins nested routes in ResolverMatch.route: a nested regex loses its leading ^."""
    return prefix + route.removeprefix("^") if prefix else route


def _routes(resolver: URLResolver, prefix: str = ""):
    for pattern in resolver.url_patterns:
        route = _join(prefix, str(pattern.pattern))
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern, route)
        elif isinstance(pattern, URLPattern):
            yield route


SERVED = sorted(set(_routes(get_resolver())))


def test_every_url_has_an_expectation():
    assert len(SERVED) > 90  # the walk reached the admin, the console, the API and the webhooks
    missing = sorted(set(SERVED) - set(ROUTES))
    stale = sorted(set(ROUTES) - set(SERVED))
    assert not missing, f"URLs nobody decided access for: add them to ROUTES: {missing}"
    assert not stale, f"ROUTES lists URLs the project no longer serves: {stale}"


def test_every_registered_model_admin_is_in_the_matrix():
    registered = {model._meta.label_lower for model in admin.site._registry}

    assert registered == set(MODEL_ACCESS)


def test_support_gets_nothing_on_any_credential_page():
    """flows.roles.CREDENTIAL_MODELS is the list of models whose pages hold credentials."""
    for model in CREDENTIAL_MODELS:
        support, admin_ = MODEL_ACCESS[f"flows.{model}"]
        assert support == NOTHING and admin_ == FULL


# --- the matrix ------------------------------------------------------------------------------------------


@dataclass
class World:
    samples: dict[str, int]
    clients: dict[str, Client]
    headers: dict[str, dict[str, str]]
    secrets: list[str] = field(default_factory=list)
    users: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def salesforce():
    """The admin's tools call Salesforce: answered here, so no request leaves the machine."""
    instance = "https://acme.my.salesforce.com/services/data"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(f"{MY_DOMAIN}/services/oauth2/token",
                  json={"access_token": "00DS7000000oxzo!AR8AQP.matrix-token", "instance_url": MY_DOMAIN})
        mock.get(f"{instance}/", json=[{"label": "Winter '26", "url": "/services/data/v65.0", "version": "65.0"}])
        mock.get(f"{instance}/v65.0/limits/", json={"DailyApiRequests": {"Max": 5000, "Remaining": 4999}})
        mock.get(f"{instance}/v65.0/actions/custom/flow",
                 json={"actions": [{"name": "On_Demand_Flow", "label": "On Demand Flow", "type": "FLOW"}]})
        mock.get(f"{instance}/v65.0/actions/custom/flow/On_Demand_Flow",
                 json={"name": "On_Demand_Flow", "label": "On Demand Flow", "inputs": [], "outputs": []})
        yield mock


@pytest.fixture
def world(db, enqueued, salesforce) -> World:
    org = make_org()
    flow = make_flow(org)
    other_flow = make_flow(org, "Other_Flow")
    trigger = Trigger.objects.create(flow=flow, inputs=INPUTS, source=Trigger.Source.API, status=Trigger.Status.FAILED,
                                     attempts=1, error_code="UNKNOWN_EXCEPTION", error_message="It failed.")
    exchange = Exchange.objects.create(org=org, trigger=trigger, kind=Exchange.Kind.INVOKE, method="POST",
                                       url=f"{MY_DOMAIN}/services/data/v65.0/actions/custom/flow/On_Demand_Flow",
                                       response_status=400)
    job = ResendJob.objects.create(filters={"status": "failed"}, max_trigger_id=trigger.pk, total=1)
    flow_key, flow_raw = api_key_create(name="This flow's key", flows=[flow])
    _, other_raw = api_key_create(name="Another flow's key", flows=[other_flow])
    webhook = ShopifyWebhook.objects.create(name="Acme store", slug="acme-store", shop_domains=SHOP, secret=SECRET)
    ShopifyTopic.objects.create(webhook=webhook, topic="orders/create", flow=flow, mapping=DEMO_MAPPING)
    delivery = WebhookDelivery.objects.create(
        webhook=webhook, shopify_webhook_id="earlier-delivery", topic="orders/create", shop_domain=SHOP,
        signed_with=WebhookDelivery.SignedWith.CURRENT, outcome=WebhookDelivery.Outcome.TRIGGERED, trigger=trigger,
        body='{"id": 1}', body_bytes=9,
    )
    bob, alice = support_user(), admin_user()
    assert not alice.is_superuser
    samples = {
        "org": org.pk, "flow": flow.pk, "trigger": trigger.pk, "job": job.pk, "delivery": delivery.pk,
        "ct_org": ContentType.objects.get_for_model(Org).pk,
        "auth_group": Group.objects.get(name=SUPPORT).pk, "auth_user": bob.pk,
        "flows_externalclientapp": org.client_apps.get().pk, "flows_org": org.pk, "flows_flow": flow.pk,
        "flows_trigger": trigger.pk, "flows_exchange": exchange.pk, "flows_resendjob": job.pk,
        "flows_apikey": flow_key.pk, "flows_shopifywebhook": webhook.pk, "flows_webhookdelivery": delivery.pk,
    }
    clients = {persona: Client() for persona in PERSONAS}
    clients["support"], clients["admin"] = logged_in(bob), logged_in(alice)
    headers = {"other_key": {"Authorization": f"Bearer {other_raw}"},
               "flow_key": {"Authorization": f"Bearer {flow_raw}"}}
    return World(samples, clients, headers, [CONSUMER_KEY, CONSUMER_SECRET, SECRET, flow_raw, other_raw],
                 {"support": bob, "admin": alice})


def request(world: World, persona: str, probe: Probe, path: str):
    headers = dict(world.headers.get(persona, {}))
    if persona == "shopify":
        headers.update(shopify_headers(probe.body, webhook_id=f"matrix-{path}-{probe.method}"))
    return world.clients[persona].generic(probe.method, path, probe.body, content_type=probe.content_type,
                                          headers=headers)


def outcome(response, path: str) -> int | str:
    """The status, or LOGIN for a redirect to the login page that comes back to `path`."""
    if response.status_code == 302:
        target = urlsplit(response["Location"])
        if target.path == reverse("admin:login"):
            return LOGIN if parse_qs(target.query).get("next") == [path] else f"302 to login, next={target.query}"
    return response.status_code


PROBES = [(route, index, probe) for route, probes in ROUTES.items() for index, probe in enumerate(probes)]


@pytest.mark.parametrize("route, index, probe", PROBES,
                         ids=[f"{probe.method} {route or '/'}#{index}" for route, index, probe in PROBES])
def test_each_persona_gets_the_expected_status(world, route, index, probe):
    path = probe.path.format(**world.samples)
    assert resolve(urlsplit(path).path).route == route, "the probe must exercise the route it is listed under"

    responses_ = {persona: request(world, persona, probe, path) for persona in PERSONAS}

    assert {persona: outcome(response, path) for persona, response in responses_.items()} == probe.expect
    for persona, response in responses_.items():
        content = response.content.decode("utf-8", "replace")
        for secret in world.secrets:
            assert secret not in content, f"{persona} saw a secret at {path}"


# --- admin actions ----------------------------------------------------------------------------------------

# Registered model -> {action: (offered to Support, offered to Flowgate admins)}. An action needs the permission
# of the view it mirrors: Test connection calls Salesforce and drops the org's cached token, so it takes the
# org's change permission, like its button. An action added without an entry here fails the first test below.
ACTIONS: dict[str, dict[str, tuple[bool, bool]]] = {
    "auth.group": {"delete_selected": (False, True)},
    "auth.user": {"delete_selected": (False, True)},
    "flows.externalclientapp": {"delete_selected": (False, True)},
    "flows.apikey": {"delete_selected": (False, True), "revoke": (False, True)},
    "flows.shopifywebhook": {"delete_selected": (False, True)},
    "flows.org": {"delete_selected": (False, True), "test_connection_action": (False, True)},
    "flows.flow": {"delete_selected": (False, True)},
    "flows.trigger": {"delete_selected": (False, False), "resend_action": (True, True)},
    "flows.exchange": {"delete_selected": (False, False)},
    "flows.resendjob": {"delete_selected": (False, False)},
    "flows.webhookdelivery": {"delete_selected": (False, False), "replay_action": (True, True)},
}
ACTION_PROBES = [(label, action, allowed) for label, actions in ACTIONS.items()
                 for action, allowed in actions.items()]


def _model_admin(label: str):
    return next(model_admin for model, model_admin in admin.site._registry.items()
                if model._meta.label_lower == label)


def test_every_admin_action_is_in_the_matrix():
    registered = {model._meta.label_lower: {name for _, name, _ in model_admin._get_base_actions()}
                  for model, model_admin in admin.site._registry.items()}

    assert registered == {label: set(actions) for label, actions in ACTIONS.items()}


@pytest.mark.parametrize("label", sorted(ACTIONS))
def test_each_persona_is_offered_the_actions_its_permissions_allow(world, rf, label):
    model_admin = _model_admin(label)
    for persona, column in (("support", 0), ("admin", 1)):
        request = rf.get("/")
        request.user = world.users[persona]

        offered = set(model_admin.get_actions(request))

        assert offered == {action for action, allowed in ACTIONS[label].items() if allowed[column]}, persona


def _snapshot(world: World, label: str) -> dict[str, Any]:
    model = next(model for model in admin.site._registry if model._meta.label_lower == label)
    rows = {label: [model_to_dict(row) for row in model.objects.order_by("pk")]}
    for other in (Trigger, ResendJob, Exchange):
        rows[other._meta.label_lower] = other.objects.count()
    return rows


@pytest.mark.parametrize("label, action", [(label, action) for label, action, (support, _) in ACTION_PROBES
                                           if not support], ids=lambda value: value)
def test_an_action_not_offered_to_support_does_nothing_when_posted(world, salesforce, label, action):
    """Forged: the POST the changelist would send if it offered the action. Nothing may change, and nothing may
    reach Salesforce (Test connection would call it three times and drop the org's token)."""
    app, model = label.split(".")
    sample = world.samples[f"{app}_{model}"]
    before, calls = _snapshot(world, label), len(salesforce.calls)

    response = world.clients["support"].post(f"/admin/{app}/{model}/", {
        "action": action, "_selected_action": [sample], "index": 0, "post": "yes"})

    assert response.status_code in (200, 302, 403)  # the list again, a redirect to it, or refused
    assert _snapshot(world, label) == before
    assert len(salesforce.calls) == calls, [call.request.url for call in salesforce.calls[calls:]]


def test_admins_run_test_connection_from_the_org_list(world, salesforce):
    """The probe above is a real one: the same POST from an admin reaches Salesforce."""
    response = world.clients["admin"].post("/admin/flows/org/", {
        "action": "test_connection_action", "_selected_action": [world.samples["org"]], "index": 0})

    assert response.status_code == 302
    assert len(salesforce.calls) == 3
