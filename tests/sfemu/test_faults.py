"""Fault switches whose answer is lost or refused, over real HTTP: did the flow run or not?"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import requests

from sfemu import RunningEmulator, serve_in_thread
from tests.sfemu.test_emulator import CREDENTIALS, V, get_token, invoke

LONG_TXN = [{"message": "ConcurrentPerOrgLongTxn Limit exceeded", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
DAILY = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]


@pytest.fixture(scope="module")
def running() -> Iterator[RunningEmulator]:
    with serve_in_thread() as sf:
        yield sf


@pytest.fixture
def sf(running: RunningEmulator) -> Iterator[RunningEmulator]:
    running.emulator.reset()
    yield running
    settle(running)  # a slow answer still sleeping must not count in the next test


@pytest.fixture
def api(sf: RunningEmulator) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {get_token(sf, session)}"
        yield session


def settle(sf: RunningEmulator, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while sf.emulator.snapshot()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.02)


def configure(sf: RunningEmulator, **changes) -> requests.Response:
    return requests.post(f"{sf.url}/_emulator/config", json=changes, timeout=5)


def flow_url(sf: RunningEmulator) -> str:
    return f"{sf.url}/services/data/{V}/actions/custom/flow/On_Demand_Flow"


# --- the answer is lost after the flow ran ---


def test_slow_next_runs_the_flow_then_outlasts_the_read_timeout(sf: RunningEmulator, api: requests.Session) -> None:
    assert configure(sf, slow_next=1, slow_ms=1500).status_code == 200
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.post(flow_url(sf), json={"inputs": [{"IndividualId": "slow-1"}]}, timeout=(5, 0.5))
    state = sf.emulator.snapshot()
    assert state["by_individual"] == {"slow-1": 1} and "slow-1" in sf.emulator.received()
    assert state["invoke_calls"] == 1 and state["invoked_inputs"] == 1
    assert state["slow_next"] == 0 and state["slow_calls"] == 1 and state["faults_injected"] == 1
    settle(sf)
    started = time.perf_counter()
    assert invoke(sf, api, [{"IndividualId": "quick"}]).status_code == 200  # only the next one was slow
    assert time.perf_counter() - started < 1


def test_slow_every_makes_every_nth_invoke_slow(sf: RunningEmulator, api: requests.Session) -> None:
    configure(sf, slow_every=3, slow_ms=300)
    api.get(f"{sf.url}/services/data/{V}/limits")  # not an invoke call: not counted
    slow = []
    for number in range(1, 8):
        started = time.perf_counter()
        assert invoke(sf, api, [{"IndividualId": f"n{number}"}]).status_code == 200
        if time.perf_counter() - started >= 0.3:
            slow.append(number)
    assert slow == [3, 6]
    state = sf.emulator.snapshot()
    assert state["slow_calls"] == 2 and len(state["by_individual"]) == 7


def test_drop_next_runs_the_flow_then_cuts_the_connection(sf: RunningEmulator, api: requests.Session) -> None:
    configure(sf, drop_next=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        api.post(flow_url(sf), json={"inputs": [{"IndividualId": "dropped"}]}, timeout=5)
    state = sf.emulator.snapshot()
    assert state["by_individual"] == {"dropped": 1}  # exactly once: the client did not retry either
    assert state["drop_next"] == 0 and state["dropped_calls"] == 1 and state["faults_injected"] == 1
    assert invoke(sf, api, [{"IndividualId": "after"}]).status_code == 200


def test_drop_next_writes_not_a_byte(sf: RunningEmulator, api: requests.Session) -> None:
    configure(sf, drop_next=1)
    body = b'{"inputs": [{"IndividualId": "raw"}]}'
    request = (
        f"POST /services/data/{V}/actions/custom/flow/On_Demand_Flow HTTP/1.1\r\nHost: {sf.host_port}\r\n"
        f"Authorization: {api.headers['Authorization']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    host, port = sf.host_port.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(request)
        received = b""
        try:
            while chunk := connection.recv(4096):
                received += chunk
        except ConnectionResetError:
            pass
    assert received == b""
    assert sf.emulator.snapshot()["by_individual"] == {"raw": 1}


def test_drop_next_spares_other_calls(sf: RunningEmulator, api: requests.Session) -> None:
    configure(sf, drop_next=1)
    assert api.get(f"{sf.url}/services/data/{V}/limits").status_code == 200
    assert api.get(flow_url(sf)).status_code == 200  # describe, not invoke
    assert sf.emulator.snapshot()["drop_next"] == 1


@pytest.mark.parametrize("status", [500, 502, 504])
def test_fail_status_with_fault_runs_flow(sf: RunningEmulator, api: requests.Session, status: int) -> None:
    configure(sf, fail_next=1, fail_status=status, fault_runs_flow=True, fail_html=False)
    response = invoke(sf, api, [{"IndividualId": f"proxy-{status}"}])
    assert response.status_code == status
    [error] = response.json()
    assert set(error) == {"message", "errorCode"} and "isSuccess" not in error  # never a per-input array
    state = sf.emulator.snapshot()
    assert state["by_individual"] == {f"proxy-{status}": 1}
    assert state["invoke_calls"] == 1 and state["faults_injected"] == 1
    assert invoke(sf, api, [{"IndividualId": "next"}]).status_code == 200


def test_fail_status_502_html_runs_nothing_by_default(sf: RunningEmulator, api: requests.Session) -> None:
    configure(sf, fail_next=1, fail_status=502)
    response = invoke(sf, api, [{"IndividualId": "refused"}])
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text == "<html><body>Bad Gateway</body></html>"
    state = sf.emulator.snapshot()
    assert state["by_individual"] == {} and state["invoke_calls"] == 0 and state["api_calls"] == 0


def test_fail_status_applies_to_fail_until_and_keeps_503(sf: RunningEmulator, api: requests.Session) -> None:
    configure(sf, fail_until=time.time() + 60, fail_status=504, fail_html=False)
    response = api.get(f"{sf.url}/services/data/{V}/limits")
    assert response.status_code == 504
    assert response.json() == [{"message": "Gateway Timeout", "errorCode": "GATEWAY_TIMEOUT"}]
    configure(sf, fail_status=503)
    assert api.get(f"{sf.url}/services/data/{V}/limits").json() == [
        {"message": "Service unavailable", "errorCode": "SERVER_UNAVAILABLE"}
    ]


def test_fault_runs_flow_only_for_invoke_calls(sf: RunningEmulator, api: requests.Session) -> None:
    configure(sf, fail_next=2, fail_status=502, fault_runs_flow=True)
    assert requests.post(f"{sf.url}/services/oauth2/token", data=CREDENTIALS, timeout=5).status_code == 502
    assert api.get(f"{sf.url}/services/data/{V}/limits").status_code == 502
    state = sf.emulator.snapshot()
    assert state["token_requests"] == 1 and state["api_calls"] == 0  # the fixture's token only


# --- refused before anything runs ---


def test_limit_next_refuses_without_running(sf: RunningEmulator, api: requests.Session) -> None:
    configure(sf, limit_next=2)
    for number in range(2):
        response = invoke(sf, api, [{"IndividualId": f"limited-{number}"}])
        assert response.status_code == 403
        assert response.json() == DAILY
        assert response.headers["Sforce-Limit-Info"] == "api-usage=0/100000"
    assert sf.emulator.snapshot()["by_individual"] == {}
    assert invoke(sf, api, [{"IndividualId": "after"}]).status_code == 200
    state = sf.emulator.snapshot()
    assert state["by_individual"] == {"after": 1} and state["faults_injected"] == 2
    assert state["limit_next"] == 0 and state["api_usage"] == 1


def test_long_txn_limit_next_refuses_without_running(sf: RunningEmulator, api: requests.Session) -> None:
    configure(sf, long_txn_limit_next=1)
    response = invoke(sf, api, [{"IndividualId": "busy"}])
    assert response.status_code == 403
    assert response.json() == LONG_TXN
    assert sf.emulator.snapshot()["by_individual"] == {}
    assert invoke(sf, api, [{"IndividualId": "after"}]).status_code == 200
    state = sf.emulator.snapshot()
    assert state["by_individual"] == {"after": 1} and state["long_txn_limit_next"] == 0


def test_limit_switches_need_a_valid_session(sf: RunningEmulator, api: requests.Session) -> None:
    configure(sf, limit_next=1)
    forged = api.get(f"{sf.url}/services/data/{V}/limits", headers={"Authorization": "Bearer forged"})
    assert forged.status_code == 401
    assert api.get(f"{sf.url}/services/data/{V}/limits").status_code == 403


# --- config ---


@pytest.mark.parametrize(
    "changes",
    [
        {"slow_next": -1}, {"slow_next": 1.5}, {"slow_next": True}, {"slow_ms": -1}, {"slow_ms": "10"},
        {"slow_every": -2}, {"slow_every": 0.5}, {"fail_status": 501}, {"fail_status": "502"},
        {"fail_status": True}, {"fault_runs_flow": 1}, {"fault_runs_flow": "yes"}, {"drop_next": -1},
        {"drop_next": "1"}, {"limit_next": -1}, {"limit_next": 2.0}, {"long_txn_limit_next": -1},
        {"long_txn_limit_next": 1.5}, {"long_txn_limit_next": None},
    ],
)
def test_fault_config_validation(sf: RunningEmulator, changes: dict) -> None:
    response = configure(sf, **changes)
    assert response.status_code == 400, changes
    assert list(changes)[0] in response.json()["error"]


def test_fault_config_defaults_and_reset(sf: RunningEmulator) -> None:
    defaults = {"slow_next": 0, "slow_ms": 0, "slow_every": 0, "fail_status": 503, "fault_runs_flow": False,
                "drop_next": 0, "limit_next": 0, "long_txn_limit_next": 0, "slow_calls": 0, "dropped_calls": 0}
    state = sf.emulator.snapshot()
    assert {key: state[key] for key in defaults} == defaults
    changes = {"slow_next": 2, "slow_ms": 12.5, "slow_every": 4, "fail_status": 500, "fault_runs_flow": True,
               "drop_next": 1, "limit_next": 3, "long_txn_limit_next": 5}
    changed = configure(sf, **changes).json()
    assert {key: changed[key] for key in changes} == changes
    sf.emulator.configure(fail_status=502)
    assert sf.emulator.snapshot()["fail_status"] == 502
    state = requests.post(f"{sf.url}/_emulator/reset", timeout=5).json()
    assert {key: state[key] for key in defaults} == defaults
