"""Test connection and flow import, against Salesforce mocked with `responses` (salesforce-api.md 1, 3, 4, 5)."""

from __future__ import annotations

import pytest
import responses
from cryptography.fernet import Fernet
from django.urls import reverse

from flows.connection import org_test_connection
from flows.flow_import import flow_import_apply, flow_import_preview, flow_list_remote
from flows.models import Exchange, Flow, FlowInput, Org
from flows.salesforce import SalesforceClient
from tests.conftest import MY_DOMAIN, make_flow

TOKEN_URL = f"{MY_DOMAIN}/services/oauth2/token"
VERSIONS_URL = f"{MY_DOMAIN}/services/data/"
# The token's instance_url differs from the My Domain URL: REST calls must go there.
INSTANCE = "https://acme-api.my.salesforce.com"
API = f"{INSTANCE}/services/data/v65.0"
LIMITS_URL = f"{API}/limits/"
LIST_URL = f"{API}/actions/custom/flow"
TOKEN = {"access_token": "00DS7000000oxzo!AR8AQP.connection-token", "instance_url": INSTANCE,
         "token_type": "Bearer", "issued_at": "1678833535086"}
LIMIT_HEADER = {"Sforce-Limit-Info": "api-usage=64/5000; api-bursts=1/750"}
LIMITS = {"DailyApiRequests": {"Max": 5000, "Remaining": 4937}, "DailyBulkApiBatches": {"Max": 15000,
                                                                                        "Remaining": 15000}}
SEASONS = {56: "Winter '23", 57: "Spring '23", 58: "Summer '23", 65: "Winter '26", 66: "Spring '26"}


def versions(first: int = 56, last: int = 66) -> list[dict]:
    return [{"label": SEASONS.get(n, "Release"), "url": f"/services/data/v{n}.0", "version": f"{n}.0"}
            for n in range(first, last + 1)]


@pytest.fixture
def sf():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def connected(sf, org):
    """An org whose token, versions and limits answer."""
    sf.post(TOKEN_URL, json=TOKEN)
    sf.get(VERSIONS_URL, json=versions())
    sf.get(LIMITS_URL, json=LIMITS, headers=LIMIT_HEADER)
    return sf


def calls_to(sf, url: str) -> list:
    return [call for call in sf.calls if call.request.url == url]


def set_version(org: Org, version: str) -> Org:
    Org.objects.filter(pk=org.pk).update(api_version=version)
    org.refresh_from_db()
    return org


# --- org_test_connection ----------------------------------------------------------------------------


def test_a_working_connection_reports_the_latest_version_and_usage(connected, org):
    report = org_test_connection(org=org)

    assert report.ok and report.error is None
    assert report.latest_version == "v66.0"
    assert report.offered_versions[-1] == "66.0" and "65.0" in report.offered_versions
    assert report.api_usage == (63, 5000)
    assert report.warnings == []
    assert [c.request.url for c in connected.calls] == [TOKEN_URL, VERSIONS_URL, LIMITS_URL]
    assert calls_to(connected, LIMITS_URL)[0].request.headers["Authorization"] == f"Bearer {TOKEN['access_token']}"
    org.refresh_from_db()
    assert (org.api_usage_used, org.api_usage_max) == (64, 5000)  # from the limits response's header


def test_every_call_is_recorded_as_an_exchange(connected, org):
    org_test_connection(org=org)

    assert list(Exchange.objects.order_by("id").values_list("kind", "method", "url", "response_status")) == [
        ("token", "POST", TOKEN_URL, 200), ("versions", "GET", VERSIONS_URL, 200),
        ("limits", "GET", LIMITS_URL, 200)]
    assert set(Exchange.objects.values_list("org", flat=True)) == {org.pk}
    token = Exchange.objects.get(kind=Exchange.Kind.TOKEN)
    assert TOKEN["access_token"] not in token.response_body  # recorded, redacted


def test_the_token_request_happens_even_with_a_cached_token(connected, org):
    SalesforceClient(org).fetch_token()
    SalesforceClient(org).fetch_token()  # cached: no second request
    assert len(calls_to(connected, TOKEN_URL)) == 1

    assert org_test_connection(org=org).ok

    assert len(calls_to(connected, TOKEN_URL)) == 2
    assert Exchange.objects.filter(kind=Exchange.Kind.TOKEN).count() == 2


NOT_FOUND = [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]


@pytest.fixture
def too_new(sf, org) -> Org:
    """The org is configured for v67.0; it offers up to v66.0, so REST calls under v67.0 answer 404."""
    sf.post(TOKEN_URL, json=TOKEN)
    sf.get(VERSIONS_URL, json=versions())
    sf.get(f"{INSTANCE}/services/data/v67.0/limits/", status=404, json=NOT_FOUND)
    return set_version(org, "v67.0")


def test_a_configured_version_the_org_does_not_offer_is_a_warning(too_new):
    report = org_test_connection(org=too_new)

    assert report.latest_version == "v66.0"
    assert len(report.warnings) == 1
    assert "does not offer API version v67.0" in report.warnings[0] and "v66.0" in report.warnings[0]


def test_the_admin_page_says_the_configured_version_is_not_offered(as_alice, too_new):
    response = as_alice.post(reverse("admin:flows_org_test_connection", args=[too_new.pk]))

    html = response.content.decode()
    assert "does not offer API version v67.0" in html


@pytest.mark.parametrize("version, warned", [("v56.0", True), ("v57.0", True), ("v58.0", False), ("v65.0", False)])
def test_a_version_older_than_three_years_is_a_warning(sf, org, version, warned):
    set_version(org, version)
    sf.post(TOKEN_URL, json=TOKEN)
    sf.get(VERSIONS_URL, json=versions())
    sf.get(f"{INSTANCE}/services/data/{version}/limits/", json=LIMITS)

    report = org_test_connection(org=org)

    assert report.ok
    old = [w for w in report.warnings if "more than three years old" in w]
    assert bool(old) is warned
    if warned:
        assert "Move to v66.0" in old[0]


@pytest.mark.parametrize("error, description, phrase", [
    ("invalid_grant", "no client credentials user enabled", "enable the Client Credentials Flow and set its Run As"),
    ("invalid_grant", "request not supported on this domain", "not login.salesforce.com"),
    ("invalid_client_id", "client identifier invalid", "The consumer key is wrong"),
    ("invalid_client", "invalid client credentials", "The consumer secret is wrong"),
    ("unsupported_grant_type", "grant type not supported", "Enable the Client Credentials Flow"),
])
def test_each_token_error_is_reported_with_its_hint(sf, org, error, description, phrase):
    sf.post(TOKEN_URL, status=400, json={"error": error, "error_description": description})

    report = org_test_connection(org=org)

    assert not report.ok
    assert (report.error.code, report.error.message) == (error, description)
    assert phrase in report.error.hint
    assert [c.request.url for c in sf.calls] == [TOKEN_URL]  # nothing more without a token
    assert list(Exchange.objects.values_list("kind", "response_status")) == [("token", 400)]


def test_a_retired_version_is_reported_with_its_hint(sf, org):
    sf.post(TOKEN_URL, json=TOKEN)
    sf.get(VERSIONS_URL, json=versions(60, 66))
    sf.get(LIMITS_URL.replace("v65.0", "v31.0"), status=410,
           json=[{"message": "This version is retired", "errorCode": "GONE"}])

    report = org_test_connection(org=set_version(org, "v31.0"))

    assert not report.ok
    assert report.error.status == 410 and "retired" in report.error.hint


def test_credentials_under_a_lost_key_are_reported(sf, org, settings):
    settings.FLOWGATE_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    report = org_test_connection(org=org)

    assert (report.ok, report.error.code) == (False, "DECRYPTION_FAILED")
    assert "consumer key and secret again" in report.error.hint
    assert len(sf.calls) == 0


# --- the admin's test connection page and action ----------------------------------------------------


def test_the_admin_page_shows_connected(as_alice, connected, org):
    response = as_alice.post(reverse("admin:flows_org_test_connection", args=[org.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Connected." in html and "<strong>v66.0</strong>" in html
    assert "63 of 5,000 (1.3 %) daily requests used" in html
    assert "The connection failed" not in html


def test_the_admin_page_shows_the_failure_and_its_hint(as_alice, sf, org):
    sf.post(TOKEN_URL, status=400, json={"error": "invalid_client", "error_description": "invalid client credentials"})

    response = as_alice.post(reverse("admin:flows_org_test_connection", args=[org.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "The connection failed." in html and "invalid_client" in html
    assert "What to fix:</strong> The consumer secret is wrong" in html
    assert "Connected." not in html


def test_a_get_of_the_test_connection_url_goes_back_to_the_org(as_alice, sf, org):
    response = as_alice.get(reverse("admin:flows_org_test_connection", args=[org.pk]))

    assert response.status_code == 302
    assert response.url == reverse("admin:flows_org_change", args=[org.pk])
    assert len(sf.calls) == 0  # a GET makes no call against the org's limits


def test_the_org_page_has_the_test_connection_button(as_alice, org):
    html = as_alice.get(reverse("admin:flows_org_change", args=[org.pk])).content.decode()

    assert f'action="{reverse("admin:flows_org_test_connection", args=[org.pk])}"' in html


def test_the_admin_action_reports_each_org(as_alice, connected, org):
    response = as_alice.post(reverse("admin:flows_org_changelist"), {
        "action": "test_connection_action", "_selected_action": [org.pk]}, follow=True)

    assert "acme: connected; latest api version v66.0." in response.content.decode().lower()  # admin capfirsts


# --- flow list and import ---------------------------------------------------------------------------


LIST = {"actions": [
    {"label": "On Demand Flow", "name": "On_Demand_Flow", "type": "FLOW", "url": "/services/data/v65.0/x"},
    {"label": "Welcome Member", "name": "Welcome_Member", "type": "FLOW", "url": "/services/data/v65.0/y"},
    {"label": "No name", "type": "FLOW"},
]}


def describe_input(name, kind, required=False, max_occurs=1, description="", label=""):
    return {"name": name, "label": label or name, "description": description, "type": kind, "required": required,
            "maxOccurs": max_occurs, "sobjectType": None, "byteLength": 0, "picklistValues": None}


@pytest.fixture
def token(sf):
    sf.post(TOKEN_URL, json=TOKEN)
    return sf


def test_the_remote_list_marks_imported_flows(token, flow):
    token.get(LIST_URL, json=LIST)

    remote = flow_list_remote(org=flow.org)

    assert [(r["name"], r["label"], r["flow"]) for r in remote] == [
        ("On_Demand_Flow", "On Demand Flow", flow), ("Welcome_Member", "Welcome Member", None)]
    assert Exchange.objects.filter(kind=Exchange.Kind.LIST).count() == 1


def test_the_admin_import_list_renders(as_alice, token, flow):
    token.get(LIST_URL, json=LIST)

    response = as_alice.get(reverse("admin:flows_org_import", args=[flow.org.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert f'href="{reverse("admin:flows_flow_change", args=[flow.pk])}">imported</a>' in html
    assert f'href="{reverse("admin:flows_org_import_preview", args=[flow.org.pk, "Welcome_Member"])}">Import…' in html
    assert "Re-import…" in html


def test_the_admin_import_list_shows_a_failure_with_its_hint(as_alice, sf, org):
    sf.post(TOKEN_URL, status=400, json={"error": "invalid_client_id", "error_description": "client identifier invalid"})

    html = as_alice.get(reverse("admin:flows_org_import", args=[org.pk])).content.decode()

    assert "invalid_client_id" in html and "The consumer key is wrong" in html


DESCRIBE_TYPES = [
    ("Text", "STRING", "text", False),
    ("Amount", "DOUBLE", "number", False),
    ("Price", "CURRENCY", "currency", False),
    ("OptIn", "BOOLEAN", "boolean", False),
    ("Day", "DATE", "date", False),
    ("At", "DATETIME", "datetime", False),
    ("Account", "SOBJECT", "record", False),
    ("Odd", "SOMETHING_NEW", "text", False),
    ("Emails", "STRING", "text", True),
]


def test_describe_types_map_to_input_types(token, org):
    inputs = [describe_input(name, kind, max_occurs=2000 if collection else 1)
              for name, kind, _, collection in DESCRIBE_TYPES]
    inputs[0].update(required=True, description="The text")
    inputs[1].update(label="The amount")
    token.get(f"{LIST_URL}/Welcome_Member", json={"name": "Welcome_Member", "label": "Welcome member",
                                                  "description": "Sends the welcome", "type": "FLOW",
                                                  "inputs": inputs, "outputs": []})

    preview = flow_import_preview(org=org, api_name="Welcome_Member")

    assert [(s.name, s.type, s.is_collection) for s in preview.inputs] == [
        (name, mapped, collection) for name, _, mapped, collection in DESCRIBE_TYPES]
    assert [s.required for s in preview.inputs] == [True] + [False] * 8
    assert (preview.inputs[0].description, preview.inputs[1].description) == ("The text", "The amount")
    assert preview.flow is None and preview.has_changes
    assert (preview.label, preview.description) == ("Welcome member", "Sends the welcome")
    assert not Flow.objects.filter(api_name="Welcome_Member").exists()  # a preview saves nothing
    assert Exchange.objects.filter(kind=Exchange.Kind.DESCRIBE).count() == 1


REIMPORT = {"name": "On_Demand_Flow", "label": "On Demand Flow v2", "type": "FLOW", "inputs": [
    describe_input("Score", "DOUBLE", description="Loyalty score"),
    describe_input("IndividualId", "STRING", required=True),
    describe_input("Points", "STRING"),
    describe_input("EmailAddress", "STRING", required=True),
]}


@pytest.fixture
def reimport(token, flow):
    """The flow has EmailAddress (optional), IndividualId (required), TelephoneNumber and Points (number);
    Salesforce now describes Score (new), IndividualId, Points (text) and EmailAddress (required)."""
    FlowInput.objects.create(flow=flow, name="Points", type=FlowInput.Type.NUMBER, order=3)
    token.get(f"{LIST_URL}/On_Demand_Flow", json=REIMPORT)
    return flow


def schema(flow: Flow) -> list[tuple]:
    return list(flow.inputs.order_by("order", "id").values_list("name", "type", "is_collection", "required"))


def test_a_reimport_preview_lists_the_changes_before_saving(reimport):
    before = schema(reimport)

    preview = flow_import_preview(org=reimport.org, api_name="On_Demand_Flow")

    assert preview.flow == reimport
    assert [s.name for s in preview.added] == ["Score"]
    assert [i.name for i in preview.removed] == ["TelephoneNumber"]
    assert [(s.name, changes) for s, changes in preview.changed] == [
        ("Points", ["type number → text"]), ("EmailAddress", ["now required"])]
    assert schema(reimport) == before


def test_saving_a_reimport_applies_exactly_the_changes(reimport):
    kept = FlowInput.objects.get(flow=reimport, name="IndividualId").pk

    flow = flow_import_apply(preview=flow_import_preview(org=reimport.org, api_name="On_Demand_Flow"))

    assert flow == reimport
    assert schema(flow) == [("Score", "number", False, False), ("IndividualId", "text", False, True),
                            ("Points", "text", False, False), ("EmailAddress", "text", False, True)]
    assert FlowInput.objects.get(flow=flow, name="IndividualId").pk == kept  # updated in place
    assert FlowInput.objects.get(flow=flow, name="Score").description == "Loyalty score"
    assert not FlowInput.objects.filter(name="TelephoneNumber").exists()
    flow.refresh_from_db()
    assert flow.label == "On Demand Flow v2"


def test_an_unchanged_flow_previews_no_change(token, flow):
    token.get(f"{LIST_URL}/On_Demand_Flow", json={"name": "On_Demand_Flow", "inputs": [
        describe_input("EmailAddress", "STRING"), describe_input("IndividualId", "STRING", required=True),
        describe_input("TelephoneNumber", "STRING")]})

    preview = flow_import_preview(org=flow.org, api_name="On_Demand_Flow")

    assert not preview.has_changes


def test_the_admin_reimport_preview_shows_changes_and_post_applies_them(as_alice, reimport):
    url = reverse("admin:flows_org_import_preview", args=[reimport.org.pk, "On_Demand_Flow"])

    page = as_alice.get(url)

    assert page.status_code == 200
    html = page.content.decode()
    assert "Changes since the last import" in html
    assert "added <code>Score</code> (number)" in html
    assert "removed <code>TelephoneNumber</code>" in html
    assert "<code>Points</code>: type number → text" in html
    assert "<code>EmailAddress</code>: now required" in html
    assert FlowInput.objects.filter(flow=reimport, name="TelephoneNumber").exists()

    response = as_alice.post(url)

    assert response.status_code == 302
    assert response.url == reverse("admin:flows_flow_change", args=[reimport.pk])
    assert [name for name, *_ in schema(reimport)] == ["Score", "IndividualId", "Points", "EmailAddress"]


def test_the_admin_imports_a_new_flow(as_alice, token, org):
    token.get(f"{LIST_URL}/Welcome_Member", json={"name": "Welcome_Member", "label": "Welcome member", "inputs": [
        describe_input("IndividualId", "STRING", required=True), describe_input("Tags", "STRING", max_occurs=5)]})
    url = reverse("admin:flows_org_import_preview", args=[org.pk, "Welcome_Member"])

    html = as_alice.get(url).content.decode()
    assert "A new flow with these inputs" in html and "Import this flow" in html

    response = as_alice.post(url)

    flow = Flow.objects.get(org=org, api_name="Welcome_Member")
    assert response.url == reverse("admin:flows_flow_change", args=[flow.pk])
    assert flow.label == "Welcome member"
    assert schema(flow) == [("IndividualId", "text", False, True), ("Tags", "text", True, False)]


def test_a_flow_salesforce_does_not_know_shows_the_hint(as_alice, token, org):
    token.get(f"{LIST_URL}/Nope", status=404,
              json=[{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}])

    response = as_alice.post(reverse("admin:flows_org_import_preview", args=[org.pk, "Nope"]))

    assert response.status_code == 200
    assert "NOT_FOUND" in response.content.decode() and "check the api name" in response.content.decode().lower()
    assert not Flow.objects.filter(api_name="Nope").exists()


def test_flow_page_links_to_reimport(as_alice, flow):
    html = as_alice.get(reverse("admin:flows_flow_change", args=[flow.pk])).content.decode()

    assert reverse("admin:flows_org_import_preview", args=[flow.org_id, flow.api_name]) in html


def test_another_orgs_flow_of_the_same_name_is_not_marked_imported(token, flow):
    from tests.conftest import make_org

    globex = make_org(slug="globex", url="https://globex.my.salesforce.com")
    make_flow(globex, "Welcome_Member")
    token.get(LIST_URL, json=LIST)

    remote = flow_list_remote(org=flow.org)

    assert [r["flow"] for r in remote] == [flow, None]
