"""The Salesforce emulator, exercised over HTTP exactly as the portal's client talks to it."""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from sfemu import (
    DEFAULT_CONSUMER_KEY,
    DEFAULT_CONSUMER_SECRET,
    DEFAULT_FLOW,
    Emulator,
    RunningEmulator,
    serve_in_thread,
)

V = "v66.0"
CREDENTIALS = {
    "grant_type": "client_credentials",
    "client_id": DEFAULT_CONSUMER_KEY,
    "client_secret": DEFAULT_CONSUMER_SECRET,
}


@pytest.fixture(scope="module")
def running() -> Iterator[RunningEmulator]:
    with serve_in_thread() as sf:
        yield sf


@pytest.fixture
def sf(running: RunningEmulator) -> RunningEmulator:
    running.emulator.reset()
    return running


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def get_token(sf: RunningEmulator, http: requests.Session) -> str:
    response = http.post(f"{sf.url}/services/oauth2/token", data=CREDENTIALS)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture
def api(sf: RunningEmulator, http: requests.Session) -> requests.Session:
    """A session already carrying a valid bearer token."""
    http.headers["Authorization"] = f"Bearer {get_token(sf, http)}"
    return http


def invoke(sf: RunningEmulator, api: requests.Session, inputs: list[dict[str, Any]], flow: str = DEFAULT_FLOW):
    return api.post(f"{sf.url}/services/data/{V}/actions/custom/flow/{flow}", json={"inputs": inputs})


# --- token ---


def test_token_success_shape(sf: RunningEmulator, http: requests.Session) -> None:
    response = http.post(f"{sf.url}/services/oauth2/token", data=CREDENTIALS)
    assert response.status_code == 200
    body = response.json()
    assert body["access_token"].startswith("00DEMU000000001!")
    assert body["instance_url"] == sf.url
    assert body["token_type"] == "Bearer" and body["scope"] == "api"
    assert body["id"] == "https://login.salesforce.com/id/00DEMU000000001AAA/005EMU000000001AAA"
    assert base64.b64decode(body["signature"])
    assert abs(int(body["issued_at"]) - time.time() * 1000) < 60_000
    assert "expires_in" not in body and "refresh_token" not in body
    assert sf.emulator.issued_tokens() == [body["access_token"]]


def test_token_basic_auth(sf: RunningEmulator, http: requests.Session) -> None:
    response = http.post(
        f"{sf.url}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET),
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("changes", "error", "description"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type", "grant type not supported"),
        ({"client_id": "nope"}, "invalid_client_id", "client identifier invalid"),
        ({"client_secret": "nope"}, "invalid_client", "invalid client credentials"),
    ],
)
def test_token_errors(sf, http, changes: dict[str, str], error: str, description: str) -> None:
    response = http.post(f"{sf.url}/services/oauth2/token", data={**CREDENTIALS, **changes})
    assert response.status_code == 400
    assert response.json() == {"error": error, "error_description": description}


@pytest.mark.parametrize(
    ("forced", "error", "description"),
    [
        ("no_client_credentials_user", "invalid_grant", "no client credentials user enabled"),
        ("wrong_domain", "invalid_grant", "request not supported on this domain"),
        ("invalid_client_id", "invalid_client_id", "client identifier invalid"),
        ("invalid_client", "invalid_client", "invalid client credentials"),
        ("unsupported_grant_type", "unsupported_grant_type", "grant type not supported"),
    ],
)
def test_forced_token_errors(sf, http, forced: str, error: str, description: str) -> None:
    assert http.post(f"{sf.url}/_emulator/config", json={"token_error": forced}).status_code == 200
    response = http.post(f"{sf.url}/services/oauth2/token", data=CREDENTIALS)
    assert response.status_code == 400
    assert response.json() == {"error": error, "error_description": description}


def test_revoke_forgets_token(sf: RunningEmulator, api: requests.Session) -> None:
    token = api.headers["Authorization"].split()[1]
    assert api.post(f"{sf.url}/services/oauth2/revoke", data={"token": token}).status_code == 200
    assert api.get(f"{sf.url}/services/data/{V}/limits/").status_code == 401
    again = api.post(f"{sf.url}/services/oauth2/revoke", data={"token": token})
    assert again.status_code == 400 and again.json()["error"] == "invalid_token"


# --- sessions, versions, limits ---


def test_versions_list_is_public_and_uncounted(sf: RunningEmulator, http: requests.Session) -> None:
    response = http.get(f"{sf.url}/services/data/")
    assert response.status_code == 200
    assert "Sforce-Limit-Info" not in response.headers
    versions = response.json()
    assert versions[0] == {"label": "Summer '23", "url": "/services/data/v58.0", "version": "58.0"}
    assert {v["version"]: v["label"] for v in versions}["65.0"] == "Winter '26"
    assert versions[-1] == {"label": "Spring '26", "url": "/services/data/v66.0", "version": "66.0"}
    sf.emulator.configure(max_version="68.0")
    assert http.get(f"{sf.url}/services/data").json()[-1]["label"] == "Winter '27"
    assert sf.emulator.snapshot()["api_usage"] == 0


def test_invalid_and_expired_sessions(sf: RunningEmulator, api: requests.Session) -> None:
    url = f"{sf.url}/services/data/{V}/limits/"
    assert api.get(url).status_code == 200
    unauthorized = {"Authorization": "Bearer 00DEMU000000001!forged"}
    for headers in ({"Authorization": ""}, unauthorized):
        response = api.get(url, headers=headers)
        assert response.status_code == 401
        assert response.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    api.post(f"{sf.url}/_emulator/config", json={"expire_tokens": True})
    assert api.get(url).status_code == 401
    api.headers["Authorization"] = f"Bearer {get_token(sf, api)}"
    assert api.get(url).status_code == 200


def test_version_errors(sf: RunningEmulator, api: requests.Session) -> None:
    retired = api.get(f"{sf.url}/services/data/v57.0/limits")
    assert retired.status_code == 410 and retired.json()[0]["errorCode"] == "NOT_FOUND"
    for version in ("v67.0", "vxx", "66.0"):
        response = api.get(f"{sf.url}/services/data/{version}/limits")
        assert response.status_code == 404
        assert response.json() == [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
        assert "Sforce-Limit-Info" in response.headers


def test_limit_header_and_daily_limit(sf: RunningEmulator, api: requests.Session) -> None:
    url = f"{sf.url}/services/data/{V}/limits/"
    first = api.get(url)
    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/100000"
    assert first.json()["DailyApiRequests"] == {"Max": 100000, "Remaining": 99999}

    sf.emulator.configure(daily_limit=5, api_usage=4)
    assert api.get(url).headers["Sforce-Limit-Info"] == "api-usage=5/5"
    blocked = api.get(url)
    assert blocked.status_code == 403
    assert blocked.json() == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert blocked.headers["Sforce-Limit-Info"] == "api-usage=5/5"


# --- flows ---


def test_list_and_describe_flows(sf: RunningEmulator, api: requests.Session) -> None:
    actions = api.get(f"{sf.url}/services/data/{V}/actions/custom/flow").json()["actions"]
    assert actions[0] == {
        "label": "On Demand Flow",
        "name": "On_Demand_Flow",
        "type": "FLOW",
        "url": f"/services/data/{V}/actions/custom/flow/On_Demand_Flow",
    }
    assert {a["name"] for a in actions} == {"On_Demand_Flow", "Order_Confirmation"}

    described = api.get(f"{sf.url}/services/data/{V}/actions/custom/flow/Order_Confirmation").json()
    assert described["type"] == "FLOW" and described["name"] == "Order_Confirmation"
    inputs = {i["name"]: i for i in described["inputs"]}
    assert inputs["IndividualId"]["required"] is True and inputs["EmailAddress"]["required"] is False
    assert inputs["Items"]["maxOccurs"] == 2000 and inputs["OrderNumber"]["maxOccurs"] == 1
    assert inputs["OrderTotal"]["type"] == "CURRENCY" and inputs["SendSms"]["type"] == "BOOLEAN"
    assert set(inputs["OrderDate"]) == {
        "name", "label", "description", "type", "required", "maxOccurs", "sobjectType", "byteLength",
        "picklistValues",
    }  # fmt: skip
    assert api.get(f"{sf.url}/services/data/{V}/actions/custom/flow/Nope").status_code == 404


def test_invoke_success_shape(sf: RunningEmulator, api: requests.Session) -> None:
    response = invoke(sf, api, [{"IndividualId": "0ind1", "EmailAddress": "a@example.com"}, {"IndividualId": "2"}])
    assert response.status_code == 200
    first, second = response.json()
    guid = first["outputValues"].pop("Flow__InterviewGuid")
    assert len(guid) >= 16 and guid != second["outputValues"]["Flow__InterviewGuid"]
    assert first == {
        "actionName": DEFAULT_FLOW,
        "errors": None,
        "invocationId": None,
        "isSuccess": True,
        "outcome": None,
        "outputValues": {"Flow__InterviewStatus": "Finished"},
        "sortOrder": -1,
        "version": 1,
    }
    assert "Sforce-Limit-Info" in response.headers


def test_mixed_batch_is_400_with_per_element_errors(sf: RunningEmulator, api: requests.Session) -> None:
    response = invoke(
        sf,
        api,
        [
            {"IndividualId": "ok-1"},
            {"EmailAddress": "x@example.com", "IndividualId": "  "},
            {"IndividualId": "ok-2", "Bogus": 1},
            {"IndividualId": "FAIL-3"},
        ],
    )
    assert response.status_code == 400
    ok, missing, bogus, failed = response.json()
    assert ok["isSuccess"] is True and ok["errors"] == [] and ok["outputValues"]["Flow__InterviewStatus"]
    assert missing["isSuccess"] is False and missing["outputValues"] is None
    assert missing["errors"] == [
        {"statusCode": "REQUIRED_FIELD_MISSING", "message": "Missing required input parameter: IndividualId", "fields": []}
    ]
    assert bogus["errors"] == [{"statusCode": "INVALID_INPUT", "message": "Invalid input parameter: Bogus", "fields": []}]
    assert failed["errors"][0]["statusCode"] == "UNKNOWN_EXCEPTION"
    assert failed["errors"][0]["message"] == "An error occurred when executing a flow interview."
    assert all(element["actionName"] == DEFAULT_FLOW for element in response.json())


def test_order_flow_requires_its_own_inputs(sf: RunningEmulator, api: requests.Session) -> None:
    good = {"IndividualId": "i", "OrderNumber": "42", "Items": ["a", "b"], "SendSms": True, "OrderTotal": 9.5}
    assert invoke(sf, api, [good], flow="Order_Confirmation").status_code == 200
    response = invoke(sf, api, [{"IndividualId": "i"}], flow="Order_Confirmation")
    assert response.status_code == 400
    assert response.json()[0]["errors"][0]["message"] == "Missing required input parameter: OrderNumber"


def test_invoke_request_errors(sf: RunningEmulator, api: requests.Session) -> None:
    url = f"{sf.url}/services/data/{V}/actions/custom/flow/{DEFAULT_FLOW}"
    empty = api.post(url)
    assert empty.status_code == 400
    assert empty.json() == [
        {
            "message": "The HTTP entity body is required, but this request has no entity body.",
            "errorCode": "JSON_PARSER_ERROR",
        }
    ]
    for body in (b"{not json", b'{"input": []}', b'{"inputs": [1]}'):
        response = api.post(url, data=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and response.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    unknown = invoke(sf, api, [{"IndividualId": "x"}], flow="Missing_Flow")
    assert unknown.status_code == 404 and unknown.json()[0]["errorCode"] == "NOT_FOUND"


# --- faults and control ---


def test_fail_next_answers_503_html_then_recovers(sf: RunningEmulator, http: requests.Session) -> None:
    http.post(f"{sf.url}/_emulator/config", json={"fail_next": 2})
    for _ in range(2):
        response = http.post(f"{sf.url}/services/oauth2/token", data=CREDENTIALS)
        assert response.status_code == 503
        assert response.headers["Content-Type"].startswith("text/html")
        assert response.text == "<html><body>Service Unavailable</body></html>"
    assert http.post(f"{sf.url}/services/oauth2/token", data=CREDENTIALS).status_code == 200
    assert sf.emulator.snapshot()["fail_next"] == 0


def test_fail_json_and_fail_until(sf: RunningEmulator, api: requests.Session) -> None:
    sf.emulator.configure(fail_html=False, fail_until=time.time() + 60)
    for _ in range(3):
        response = api.get(f"{sf.url}/services/data/{V}/limits")
        assert response.status_code == 503
        assert response.json() == [{"message": "Service unavailable", "errorCode": "SERVER_UNAVAILABLE"}]
    sf.emulator.configure(fail_until=0)
    assert api.get(f"{sf.url}/services/data/{V}/limits").status_code == 200


def test_counters(sf: RunningEmulator, api: requests.Session) -> None:
    invoke(sf, api, [{"IndividualId": "a"}, {"IndividualId": "b"}])
    invoke(sf, api, [{"IndividualId": "a"}])
    api.get(f"{sf.url}/services/data/{V}/limits")
    api.get(f"{sf.url}/services/data/")
    state = api.get(f"{sf.url}/_emulator/state").json()
    assert state["token_requests"] == 1
    assert state["api_calls"] == 3 and state["api_usage"] == 3
    assert state["invoke_calls"] == 2 and state["invoked_inputs"] == 3
    assert state["by_individual"] == {"a": 2, "b": 1}
    assert state == sf.emulator.snapshot()


def test_config_validation_and_reset(sf: RunningEmulator, http: requests.Session) -> None:
    assert http.post(f"{sf.url}/_emulator/config", json={"bogus": 1}).status_code == 400
    assert http.post(f"{sf.url}/_emulator/config", json={"fail_next": "x"}).status_code == 400
    with pytest.raises(ValueError):
        sf.emulator.configure(bogus=1)
    changed = http.post(f"{sf.url}/_emulator/config", json={"daily_limit": 7, "fail_prefix": "X"}).json()
    assert changed["daily_limit"] == 7 and changed["fail_prefix"] == "X"
    get_token(sf, http)
    state = http.post(f"{sf.url}/_emulator/reset").json()
    assert state["daily_limit"] == 100000 and state["token_requests"] == 0
    assert sf.emulator.issued_tokens() == []


def test_latency_and_keep_alive(sf: RunningEmulator, http: requests.Session) -> None:
    sf.emulator.configure(latency_ms=30)
    started = time.perf_counter()
    response = http.get(f"{sf.url}/services/data/")
    assert time.perf_counter() - started >= 0.03
    assert response.raw.version == 11
    quick = time.perf_counter()
    http.get(f"{sf.url}/_emulator/state")  # control endpoints are never delayed
    assert time.perf_counter() - quick < 0.03


def test_custom_credentials_and_stop() -> None:
    emulator = Emulator(consumer_key="k", consumer_secret="s")
    with serve_in_thread(emulator=emulator) as sf:
        data = {"grant_type": "client_credentials", "client_id": "k", "client_secret": "s"}
        assert requests.post(f"{sf.url}/services/oauth2/token", data=data, timeout=5).status_code == 200
        assert sf.host_port in sf.url
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{sf.url}/services/data/", timeout=1)


def test_token_ttl(sf: RunningEmulator, http: requests.Session) -> None:
    sf.emulator.configure(token_ttl_seconds=0.05)
    http.headers["Authorization"] = f"Bearer {get_token(sf, http)}"
    assert http.get(f"{sf.url}/services/data/{V}/limits").status_code == 200
    time.sleep(0.06)
    assert http.get(f"{sf.url}/services/data/{V}/limits").status_code == 401


def test_command_line_prints_url_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sfemu", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith("sfemu listening on http://127.0.0.1:")
        url = line.split()[-1]
        assert requests.get(f"{url}/services/data/", timeout=5).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        process.kill()
        process.wait()


def test_token_fail_next_fails_only_token_requests(sf: RunningEmulator, api: requests.Session,
                                                   http: requests.Session) -> None:
    sf.emulator.configure(token_fail_next=2)
    assert api.get(f"{sf.url}/services/data/{V}/limits").status_code == 200  # a valid token keeps working
    for _ in range(2):
        assert http.post(f"{sf.url}/services/oauth2/token", data=CREDENTIALS).status_code == 503
    assert http.post(f"{sf.url}/services/oauth2/token", data=CREDENTIALS).status_code == 200
    state = sf.emulator.snapshot()
    assert state["token_fail_next"] == 0 and state["faults_injected"] == 2
    assert http.post(f"{sf.url}/_emulator/config", json={"token_fail_next": -1}).status_code == 400


def test_token_requests_in_flight_are_counted_apart(sf: RunningEmulator, api: requests.Session) -> None:
    sf.emulator.configure(latency_ms=400)  # long enough for the four to overlap on a busy machine
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(requests.post, f"{sf.url}/services/oauth2/token", data=CREDENTIALS, timeout=5)
                   for _ in range(3)]
        futures.append(pool.submit(api.get, f"{sf.url}/services/data/{V}/limits"))
        assert [f.result().status_code for f in futures] == [200] * 4
    state = sf.emulator.snapshot()
    assert state["token_max_in_flight"] == 3 and state["token_in_flight"] == 0
    assert state["max_in_flight"] == 4 and state["in_flight"] == 0
