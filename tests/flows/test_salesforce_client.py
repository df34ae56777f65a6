"""SalesforceClient against every response shape in shared/salesforce-api.md (Salesforce mocked with `responses`)."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs

import pytest
import requests
import responses

from flows.models import Exchange, Org
from flows.salesforce import SalesforceClient, SalesforceError, tokens
from flows.salesforce.client import parse_limit_info
from tests.conftest import CONSUMER_KEY, CONSUMER_SECRET, MY_DOMAIN

TOKEN_URL = f"{MY_DOMAIN}/services/oauth2/token"
# The token's instance_url differs from the My Domain URL, so a REST call proves which one it used.
INSTANCE = "https://acme-api.my.salesforce.com"
API = f"{INSTANCE}/services/data/v65.0"
FLOW = "On_Demand_Flow"
INVOKE_URL = f"{API}/actions/custom/flow/{FLOW}"
ACCESS_TOKEN = "00DS7000000oxzo!AR8AQP.first-access-token"
SECOND_TOKEN = "00DS7000000oxzo!AR8AQP.second-access-token"
INPUT = {"IndividualId": "003Ho00002AlRM8IAN"}

SUCCESS_V63 = {
    "actionName": FLOW, "errors": None, "invocationId": None, "isSuccess": True, "outcome": None,
    "outputValues": {"MemberID": "0lMal000000DCJVEA4",
                     "Flow__InterviewGuid": "9171d0bc96bab89e0de810ea72d419adeea6b1-949c",
                     "Flow__InterviewStatus": "Finished"},
    "sortOrder": -1, "version": 1,
}
SUCCESS_OLD = {"actionName": FLOW, "errors": None, "isSuccess": True, "outputValues": None}
FAILURE = {"actionName": FLOW, "isSuccess": False, "outputValues": None, "errors": [
    {"statusCode": "UNKNOWN_EXCEPTION", "message": "An error occurred when executing a flow interview.", "fields": []}]}
SESSION_EXPIRED = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def token_body(access_token: str = ACCESS_TOKEN, instance_url: str = INSTANCE) -> dict:
    return {"access_token": access_token, "signature": "nUFHwtfIGLK4L2p3Qm9sig=", "scope": "api",
            "instance_url": instance_url, "id": "https://login.salesforce.com/id/00Dd000000XXXXXXX/005d000000XXXXX",
            "token_type": "Bearer", "issued_at": "1678833535086"}


@pytest.fixture
def sf():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def calls_to(sf: responses.RequestsMock, url: str) -> list:
    return [call for call in sf.calls if call.request.url == url]


@pytest.fixture
def client(org) -> SalesforceClient:
    return SalesforceClient(org)


@pytest.fixture
def token(sf):
    sf.post(TOKEN_URL, json=token_body())


def raises(call) -> SalesforceError:
    with pytest.raises(SalesforceError) as caught:
        call()
    return caught.value


# --- token ---------------------------------------------------------------------------------------------


def test_the_token_instance_url_is_the_rest_base_and_the_token_is_cached(sf, token, client):
    sf.post(INVOKE_URL, json=[SUCCESS_V63])

    client.invoke(FLOW, [INPUT])
    SalesforceClient(client.org).invoke(FLOW, [INPUT])  # another client, same org: the shared cache

    [token_call] = calls_to(sf, TOKEN_URL)
    assert parse_qs(token_call.request.body) == {
        "grant_type": ["client_credentials"], "client_id": [CONSUMER_KEY], "client_secret": [CONSUMER_SECRET]}
    invokes = calls_to(sf, INVOKE_URL)
    assert len(invokes) == 2
    assert invokes[0].request.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert json.loads(invokes[0].request.body) == {"inputs": [INPUT]}
    assert list(Exchange.objects.order_by("id").values_list("kind", "response_status")) == [
        ("token", 200), ("invoke", 200), ("invoke", 200)]


def test_a_process_keeps_its_token_a_few_seconds_without_reading_the_shared_cache(sf, token, client, monkeypatch):
    sf.post(INVOKE_URL, json=[SUCCESS_V63])
    client.invoke(FLOW, [INPUT])
    reads = []
    real_get = tokens.cache.get
    monkeypatch.setattr(tokens.cache, "get", lambda key, *a, **kw: reads.append(key) or real_get(key, *a, **kw))

    SalesforceClient(client.org).invoke(FLOW, [INPUT])
    assert reads == []  # the process's own copy

    clock = time.monotonic()
    monkeypatch.setattr(tokens.time, "monotonic", lambda: clock + tokens.LOCAL_SECONDS + 1)
    SalesforceClient(client.org).invoke(FLOW, [INPUT])
    assert len(reads) == 1  # kept no longer than LOCAL_SECONDS: the shared copy again, no new token request
    assert len(calls_to(sf, TOKEN_URL)) == 1


def test_a_token_renewed_by_another_process_costs_this_one_a_single_refused_call(sf, token, client):
    """This process holds the old token in memory; another process has already put a new one in the shared cache
    after Salesforce ended the old session."""
    sf.post(INVOKE_URL, json=[SUCCESS_V63])
    client.invoke(FLOW, [INPUT])
    key = tokens.token_key(client.app.credential_version, client.org.my_domain_url)
    tokens._write(key, tokens.Token(SECOND_TOKEN, INSTANCE))
    sf.replace(responses.POST, INVOKE_URL, status=401, json=SESSION_EXPIRED)
    sf.add(responses.POST, INVOKE_URL, json=[SUCCESS_V63])

    [result] = SalesforceClient(client.org).invoke(FLOW, [INPUT])

    assert result.is_success
    refused, repeat = calls_to(sf, INVOKE_URL)[1:]
    assert refused.request.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert repeat.request.headers["Authorization"] == f"Bearer {SECOND_TOKEN}"  # the other process's, not fetched
    assert len(calls_to(sf, TOKEN_URL)) == 1


@pytest.mark.parametrize("error, description, phrase", [
    ("invalid_grant", "no client credentials user enabled", "External Client App's policies"),
    ("invalid_grant", "request not supported on this domain", "not login.salesforce.com"),
    ("invalid_client_id", "client identifier invalid", "consumer key is wrong"),
    ("invalid_client", "invalid client credentials", "consumer secret is wrong"),
    ("unsupported_grant_type", "grant type not supported", "Enable the Client Credentials Flow in"),
])
def test_each_token_error_is_permanent_with_what_the_admin_must_fix(sf, client, error, description, phrase):
    sf.post(TOKEN_URL, status=400, json={"error": error, "error_description": description})

    failure = raises(lambda: client.invoke(FLOW, [INPUT]))

    assert (failure.code, failure.message, failure.status, failure.permanent) == (error, description, 400, True)
    assert phrase in failure.hint
    assert len(sf.calls) == 1  # no REST call without a token


def test_a_failed_token_request_is_shared_by_a_burst_instead_of_repeated(sf, client):
    sf.post(TOKEN_URL, status=400, json={"error": "invalid_client", "error_description": "invalid client credentials"})

    for _ in range(3):
        assert raises(lambda: SalesforceClient(client.org).invoke(FLOW, [INPUT])).code == "invalid_client"

    assert len(calls_to(sf, TOKEN_URL)) == 1


def test_a_token_whose_instance_url_is_not_salesforce_is_refused(sf, client):
    sf.post(TOKEN_URL, json=token_body(instance_url="https://evil.example.com"))
    evil = sf.post(f"https://evil.example.com/services/data/v65.0/actions/custom/flow/{FLOW}", json=[SUCCESS_V63])

    failure = raises(lambda: client.invoke(FLOW, [INPUT]))

    assert (failure.code, failure.permanent) == ("DISALLOWED_INSTANCE_URL", True)
    assert evil.call_count == 0
    assert len(sf.calls) == 1


def test_changing_the_my_domain_url_stops_using_the_old_orgs_token(sf, token, client):
    # Else flows keep firing at the old org with its cached token for up to FLOWGATE_TOKEN_CACHE_SECONDS.
    sf.post(INVOKE_URL, json=[SUCCESS_V63])
    client.invoke(FLOW, [INPUT])
    org = client.org
    org.my_domain_url = "https://globex.my.salesforce.com"
    org.full_clean()
    org.save()
    new_token = sf.post("https://globex.my.salesforce.com/services/oauth2/token",
                        json=token_body(SECOND_TOKEN, "https://globex.my.salesforce.com"))
    new_invoke = sf.post(f"https://globex.my.salesforce.com/services/data/v65.0/actions/custom/flow/{FLOW}",
                         json=[SUCCESS_V63])

    SalesforceClient(Org.objects.get(pk=org.pk)).invoke(FLOW, [INPUT])

    assert (new_token.call_count, new_invoke.call_count) == (1, 1)
    assert len(calls_to(sf, INVOKE_URL)) == 1  # the old org got nothing more


# --- invoke --------------------------------------------------------------------------------------------


def test_invoke_success_recorded_v63_element(sf, token, client):
    sf.post(INVOKE_URL, json=[SUCCESS_V63])

    [result] = client.invoke(FLOW, [INPUT])

    assert result.is_success
    assert result.outputs == SUCCESS_V63["outputValues"]
    assert result.errors == []


def test_invoke_success_older_short_shape_with_null_outputs(sf, token, client):
    sf.post(INVOKE_URL, json=[SUCCESS_OLD])

    [result] = client.invoke(FLOW, [INPUT])

    assert (result.is_success, result.outputs, result.errors) == (True, None, [])


def test_invoke_400_with_per_input_array_is_judged_element_by_element(sf, token, client):
    sf.post(INVOKE_URL, status=400, json=[{**SUCCESS_OLD, "errors": []}, FAILURE])

    ok, failed = client.invoke(FLOW, [INPUT, {"IndividualId": "003Ho00002AlRM8XXX"}])

    assert ok.is_success and ok.errors == []
    assert not failed.is_success
    assert failed.error_code == "UNKNOWN_EXCEPTION"
    assert failed.error_message == "An error occurred when executing a flow interview."


def test_an_expired_session_gets_one_new_token_and_one_repeat(sf, client):
    sf.post(TOKEN_URL, json=token_body())
    sf.post(TOKEN_URL, json=token_body(SECOND_TOKEN))
    sf.post(INVOKE_URL, status=401, json=SESSION_EXPIRED)
    sf.post(INVOKE_URL, json=[SUCCESS_V63])

    [result] = client.invoke(FLOW, [INPUT])

    assert result.is_success
    assert len(calls_to(sf, TOKEN_URL)) == 2
    first, repeat = calls_to(sf, INVOKE_URL)
    assert first.request.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert repeat.request.headers["Authorization"] == f"Bearer {SECOND_TOKEN}"


def test_a_second_401_is_permanent_and_not_repeated_again(sf, client):
    sf.post(TOKEN_URL, json=token_body())
    sf.post(TOKEN_URL, json=token_body(SECOND_TOKEN))
    sf.post(INVOKE_URL, status=401, json=SESSION_EXPIRED)

    failure = raises(lambda: client.invoke(FLOW, [INPUT]))

    assert (failure.code, failure.status, failure.permanent) == ("INVALID_SESSION_ID", 401, True)
    assert "API Enabled" in failure.hint
    assert len(calls_to(sf, TOKEN_URL)) == 2
    assert len(calls_to(sf, INVOKE_URL)) == 2


@pytest.mark.parametrize("status, body, code, permanent, hint", [
    (404, [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}], "NOT_FOUND", True,
     "check the api name"),
    (403, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
     "REQUEST_LIMIT_EXCEEDED", False, "daily api requests"),
    (429, None, "HTTP_429", False, ""),
    (500, [{"message": "Internal error", "errorCode": "UNKNOWN_EXCEPTION"}], "UNKNOWN_EXCEPTION", False, ""),
    (400, [{"message": "The HTTP entity body is required, but this request has no entity body.",
            "errorCode": "JSON_PARSER_ERROR"}], "JSON_PARSER_ERROR", True, ""),
    (403, [{"message": "API is not enabled for this Organization or Partner", "errorCode": "API_DISABLED_FOR_ORG"}],
     "API_DISABLED_FOR_ORG", True, "api enabled"),
    (410, [{"message": "Version retired", "errorCode": "GONE"}], "GONE", True, "retired"),
], ids=["404-not-found", "403-limit", "429", "500", "400-json-parser", "403-api-disabled", "410-retired"])
def test_rest_errors_are_classified(sf, token, client, status, body, code, permanent, hint):
    sf.post(INVOKE_URL, status=status, json=body)

    failure = raises(lambda: client.invoke(FLOW, [INPUT]))

    assert (failure.code, failure.status, failure.permanent) == (code, status, permanent)
    assert hint in failure.hint.lower()
    if body:
        assert failure.message == body[0]["message"]


def test_a_503_html_page_is_transient_with_text_not_tags(sf, token, client):
    sf.post(INVOKE_URL, status=503, content_type="text/html",
            body="<html><head><title>Maintenance</title></head><body><h1>Service Unavailable</h1>"
                 "<p>Back &amp; running soon.</p></body></html>")

    failure = raises(lambda: client.invoke(FLOW, [INPUT]))

    assert (failure.code, failure.status, failure.permanent) == ("HTTP_503", 503, False)
    assert "Service Unavailable" in failure.message and "Back & running soon." in failure.message
    assert "<" not in failure.message


def test_a_200_without_one_element_per_input_is_a_permanent_unexpected_response(sf, token, client):
    sf.post(INVOKE_URL, json=[SUCCESS_V63])

    failure = raises(lambda: client.invoke(FLOW, [INPUT, INPUT]))

    assert (failure.code, failure.permanent) == ("UNEXPECTED_RESPONSE", True)


def test_a_network_error_is_transient_and_recorded(sf, token, client):
    sf.post(INVOKE_URL, body=requests.ConnectionError("Connection reset by peer"))

    failure = raises(lambda: client.invoke(FLOW, [INPUT]))

    assert (failure.code, failure.permanent) == ("NETWORK_ERROR", False)
    exchange = Exchange.objects.get(kind=Exchange.Kind.INVOKE)
    assert exchange.response_status is None
    assert exchange.network_error.startswith("ConnectionError")
    assert "Connection reset by peer" in exchange.network_error


def test_a_timeout_is_transient(sf, token, client):
    sf.post(INVOKE_URL, body=requests.ReadTimeout("Read timed out. (read timeout=30)"))

    failure = raises(lambda: client.invoke(FLOW, [INPUT]))

    assert (failure.code, failure.permanent, failure.outcome) == ("TIMEOUT", False, "unknown")
    assert Exchange.objects.get(kind=Exchange.Kind.INVOKE).network_error.startswith("ReadTimeout")


def test_a_redirect_is_not_followed(sf, token, client):
    elsewhere = "https://acme.my.salesforce.com/login"
    sf.post(INVOKE_URL, status=302, headers={"Location": elsewhere})
    target = sf.add(responses.Response(responses.GET, elsewhere, status=200, body="login page"))
    target_post = sf.post(elsewhere, json=[SUCCESS_V63])

    failure = raises(lambda: client.invoke(FLOW, [INPUT]))

    assert (failure.code, failure.status, failure.permanent) == ("REDIRECT", 302, True)
    assert elsewhere in failure.message
    assert target.call_count == target_post.call_count == 0


def test_the_limit_header_updates_the_orgs_api_usage(sf, token, client):
    sf.post(INVOKE_URL, json=[SUCCESS_V63], headers={"Sforce-Limit-Info": "api-usage=10018/100000; api-bursts=1/750"})

    client.invoke(FLOW, [INPUT])

    org = Org.objects.get(pk=client.org.pk)
    assert (org.api_usage_used, org.api_usage_max) == (10018, 100000)
    assert org.api_usage_seen_at is not None


def test_the_limit_header_is_parsed_leniently():
    assert parse_limit_info("api-usage=17/15000; per-app-api-usage=17/250(appName=x)") == {
        "api-usage": (17, 15000), "per-app-api-usage": (17, 250)}
    assert parse_limit_info("garbage; api-usage=oops") == {}


# --- describe, list, versions, limits --------------------------------------------------------------------


def test_describe_flow(sf, token, client):
    describe = {"name": FLOW, "label": "On Demand Flow", "type": "FLOW", "outputs": [], "inputs": [
        {"name": "IndividualId", "label": "Individual", "type": "STRING", "required": True, "maxOccurs": 1}]}
    sf.get(INVOKE_URL, json=describe)

    assert client.describe_flow(FLOW) == describe
    assert Exchange.objects.filter(kind=Exchange.Kind.DESCRIBE, response_status=200).count() == 1


def test_list_flows(sf, token, client):
    sf.get(f"{API}/actions/custom/flow", json={"actions": [
        {"label": "Create Opportunities", "name": "Create_Opportunities", "type": "FLOW",
         "url": "/services/data/v51.0/actions/custom/flow/Create_Opportunities"}, "not an action"]})

    flows = client.list_flows()

    assert [f["name"] for f in flows] == ["Create_Opportunities"]


def test_list_versions_needs_no_token(sf, client):
    sf.get(f"{MY_DOMAIN}/services/data/", json=[{"label": "Winter '26", "url": "/services/data/v65.0",
                                               "version": "65.0"}])

    assert [v["version"] for v in client.list_versions()] == ["65.0"]
    assert len(sf.calls) == 1
    assert Exchange.objects.get().kind == Exchange.Kind.VERSIONS


def test_limits(sf, token, client):
    sf.get(f"{API}/limits/", json={"DailyApiRequests": {"Max": 5000, "Remaining": 4937}})

    assert client.limits()["DailyApiRequests"] == {"Max": 5000, "Remaining": 4937}


# --- hosts -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda c: c.invoke(FLOW, [INPUT]), lambda c: c.list_versions(), lambda c: c.fetch_token(),
], ids=["invoke", "versions", "token"])
def test_an_org_url_that_is_not_salesforce_gets_no_http_call_at_all(sf, org, call):
    Org.objects.filter(pk=org.pk).update(my_domain_url="https://evil.example.com")  # bypasses the validator
    # Nothing is mocked: responses records even unmatched requests in sf.calls.

    failure = raises(lambda: call(SalesforceClient(Org.objects.get(pk=org.pk))))

    assert (failure.code, failure.permanent) == ("DISALLOWED_HOST", True)
    assert len(sf.calls) == 0
    assert not Exchange.objects.exists()


def test_an_org_without_an_active_client_app_is_told_so(sf, org):
    org.client_apps.update(is_active=False)

    failure = raises(lambda: SalesforceClient(org).invoke(FLOW, [INPUT]))

    assert (failure.code, failure.permanent) == ("NO_CLIENT_APP", True)
    assert len(sf.calls) == 0

