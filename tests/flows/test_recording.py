"""Exchanges: what was sent and received, redacted before it is stored, truncated, and never changed."""

from __future__ import annotations

import json
from urllib.parse import quote_plus

import pytest
import responses

from flows.models import Exchange
from flows.salesforce import SalesforceClient, SalesforceError
from flows.salesforce.recording import REDACTED, record_exchange
from tests.conftest import CONSUMER_KEY, CONSUMER_SECRET, MY_DOMAIN

TOKEN_URL = f"{MY_DOMAIN}/services/oauth2/token"
INVOKE_URL = f"{MY_DOMAIN}/services/data/v65.0/actions/custom/flow/On_Demand_Flow"
ACCESS_TOKEN = "00DS7000000oxzo!AR8AQP.first-access-token-abcdef"
SECOND_TOKEN = "00DS7000000oxzo!AR8AQP.second-access-token-ghijkl"
SIGNATURE = "nUFHwtfIGLK4L2p3Qm9zaWduYXR1cmU+/x="
SECRETS = (CONSUMER_KEY, CONSUMER_SECRET, ACCESS_TOKEN, SECOND_TOKEN, SIGNATURE)
INPUT = {"IndividualId": "003Ho00002AlRM8IAN"}
SUCCESS = [{"actionName": "On_Demand_Flow", "errors": None, "isSuccess": True, "outputValues": None}]


def token_body(access_token: str) -> dict:
    return {"access_token": access_token, "signature": SIGNATURE, "instance_url": MY_DOMAIN, "token_type": "Bearer",
            "issued_at": "1678833535086", "id": "https://login.salesforce.com/id/00Dd000000XXXXXXX/005d000000XXXXX"}


@pytest.fixture
def sf():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def every_exchange_as_text() -> str:
    return json.dumps(list(Exchange.objects.values()), default=str)


def test_no_secret_reaches_any_exchange_column(sf, org):
    # Two tokens (a session expiry in between), a page echoing the token, a cookie: every place a secret can hide.
    sf.post(TOKEN_URL, json=token_body(ACCESS_TOKEN), headers={"Set-Cookie": f"sid={ACCESS_TOKEN}"})
    sf.post(TOKEN_URL, json=token_body(SECOND_TOKEN))
    sf.post(INVOKE_URL, status=401, json=[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    sf.post(INVOKE_URL, status=502, content_type="text/html",
            body=f"<html><body>Bad gateway for Bearer {SECOND_TOKEN}</body></html>")

    with pytest.raises(SalesforceError):
        SalesforceClient(org).invoke("On_Demand_Flow", [INPUT])

    assert list(Exchange.objects.order_by("id").values_list("kind", "response_status")) == [
        ("token", 200), ("invoke", 401), ("token", 200), ("invoke", 502)]
    text = every_exchange_as_text()
    for secret in SECRETS:
        assert secret not in text
        assert quote_plus(secret) not in text
    assert "Bearer" in text  # the scheme stays readable, only the credential goes


def test_redacted_markers_show_where_secrets_were(sf, org):
    sf.post(TOKEN_URL, json=token_body(ACCESS_TOKEN))
    sf.post(INVOKE_URL, json=SUCCESS)

    SalesforceClient(org).invoke("On_Demand_Flow", [INPUT])

    token = Exchange.objects.get(kind=Exchange.Kind.TOKEN)
    assert "grant_type=client_credentials" in token.request_body
    assert f"client_id={REDACTED}" in token.request_body
    assert f"client_secret={REDACTED}" in token.request_body
    body = json.loads(token.response_body)
    assert (body["access_token"], body["signature"], body["instance_url"]) == (REDACTED, REDACTED, MY_DOMAIN)
    invoke = Exchange.objects.get(kind=Exchange.Kind.INVOKE)
    assert invoke.request_headers["Authorization"] == f"Bearer {REDACTED}"
    assert json.loads(invoke.request_body) == {"inputs": [INPUT]}  # the inputs stay readable
    assert invoke.url == INVOKE_URL


def test_long_bodies_are_truncated_after_redaction(sf, org, settings):
    settings.FLOWGATE_EXCHANGE_BODY_LIMIT = 40
    sf.post(TOKEN_URL, json=token_body(ACCESS_TOKEN))
    page = f"Error page{' ' * 10}{ACCESS_TOKEN} " + "x" * 200  # the token straddles the limit
    sf.post(INVOKE_URL, status=503, content_type="text/plain", body=page)

    with pytest.raises(SalesforceError):
        SalesforceClient(org).invoke("On_Demand_Flow", [INPUT])

    invoke = Exchange.objects.get(kind=Exchange.Kind.INVOKE)
    redacted = page.replace(ACCESS_TOKEN, REDACTED)
    assert invoke.response_body == f"{redacted[:40]}\n…[truncated {len(redacted) - 40} more characters]"
    assert ACCESS_TOKEN[:12] not in invoke.response_body
    assert invoke.request_body.endswith("more characters]")  # the JSON request body too


def test_a_short_body_is_kept_whole(sf, org):
    sf.post(TOKEN_URL, json=token_body(ACCESS_TOKEN))
    sf.post(INVOKE_URL, json=SUCCESS)

    SalesforceClient(org).invoke("On_Demand_Flow", [INPUT])

    assert json.loads(Exchange.objects.get(kind=Exchange.Kind.INVOKE).response_body) == SUCCESS


@pytest.fixture
def exchange(org) -> Exchange:
    return record_exchange(org=org, trigger=None, kind=Exchange.Kind.INVOKE, method="POST", url=INVOKE_URL,
                           request_headers={}, request_body="{}", response_status=200, response_body="[]")


def test_an_exchange_cannot_be_saved_again(exchange):
    exchange.response_status = 500
    with pytest.raises(TypeError, match="immutable"):
        exchange.save()
    assert Exchange.objects.get().response_status == 200


def test_an_exchange_cannot_be_deleted(exchange):
    with pytest.raises(TypeError, match="immutable"):
        exchange.delete()
    assert Exchange.objects.count() == 1


@pytest.mark.parametrize("change", [
    lambda: Exchange.objects.filter(kind="invoke").update(response_status=500),
    lambda: Exchange.objects.update(response_status=500),
    lambda: Exchange.objects.all().delete(),
    lambda: Exchange.objects.filter(kind="invoke").delete(),
], ids=["filter-update", "manager-update", "all-delete", "filter-delete"])
def test_querysets_cannot_change_exchanges(exchange, change):
    with pytest.raises(TypeError, match="immutable"):
        change()
    assert list(Exchange.objects.values_list("response_status", flat=True)) == [200]
