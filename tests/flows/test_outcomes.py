"""Every way a call can fail, classified as the flow certainly not run (safe to retry) or outcome unknown (it may
have run), recorded on its Exchange, with a sentence and a hint a person can act on (salesforce-api.md section 7).

The network failures are real: DNS, refused connections, TLS, read timeouts and resets come from real sockets on
loopback (a server that answers nothing, or hangs up after reading the request); only a connect timeout, which
needs a host that drops packets, is simulated.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import requests
import responses

from flows.models import Exchange, Org
from flows.salesforce import SalesforceClient, SalesforceError
from flows.salesforce.errors import NOT_RUN, RAN, UNKNOWN, default_hint, flow_error_hint, invoke_outcome

FLOW = "On_Demand_Flow"
INPUT = {"IndividualId": "003Ho00002AlRM8IAN"}
TOKEN = {"access_token": "00DS7000000oxzo!AR8AQP.outcome-token", "token_type": "Bearer"}
PER_INPUT_SUCCESS = [{"actionName": FLOW, "errors": None, "isSuccess": True, "outputValues": None}]
PER_INPUT_FAILURE = [{"actionName": FLOW, "isSuccess": False, "outputValues": None, "errors": [
    {"statusCode": "UNKNOWN_EXCEPTION", "message": "An error occurred when executing a flow interview."}]}]


@contextmanager
def raw_server(on_request: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback server whose every connection is handed to `on_request` after its request headers arrive;
    yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.settimeout(5)
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                on_request(conn)
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def answer_token_then(invoke: Callable[[socket.socket], None]) -> Callable[[socket.socket], None]:
    """Answers the token request (the first connection), then hands invoke connections to `invoke`."""
    seen = {"n": 0}

    def handle(conn: socket.socket) -> None:
        seen["n"] += 1
        if seen["n"] == 1:
            port = conn.getsockname()[1]
            body = ('{"access_token": "00DS7000000oxzo!AR8AQP.raw-token", "instance_url": "http://127.0.0.1:%d"}'
                    % port).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
            conn.close()
        else:
            invoke(conn)

    return handle


def hang(conn: socket.socket) -> None:
    """Takes the request and never answers: a read timeout."""
    threading.Timer(3, conn.close).start()


def hang_up(conn: socket.socket) -> None:
    """Takes the request and closes the connection without a word: a reset mid-response."""
    conn.shutdown(socket.SHUT_RDWR)
    conn.close()


def local_org(url: str) -> Org:
    from tests.conftest import make_org

    return make_org(slug=f"o{abs(hash(url)) % 10**6}", url=url)


def invoke_failure(org: Org) -> SalesforceError:
    with pytest.raises(SalesforceError) as caught:
        SalesforceClient(org).invoke(FLOW, [INPUT])
    return caught.value


def the_invoke_exchange() -> Exchange:
    return Exchange.objects.get(kind=Exchange.Kind.INVOKE)


# --- real sockets ------------------------------------------------------------------------------------------


def test_a_read_timeout_after_the_request_was_sent_may_have_run_the_flow(db, settings):
    settings.FLOWGATE_HTTP_READ_TIMEOUT = 0.5
    with raw_server(answer_token_then(hang)) as port:
        failure = invoke_failure(local_org(f"http://127.0.0.1:{port}"))

    assert (failure.code, failure.outcome, failure.permanent) == ("TIMEOUT", UNKNOWN, False)
    assert "did not answer in time" in failure.message and "Salesforce may have run the flow" in failure.hint
    exchange = the_invoke_exchange()
    assert exchange.classification == Exchange.Classification.UNKNOWN
    assert "ReadTimeout" in exchange.network_error  # the technical detail stays in the Exchange


def test_a_connection_closed_before_the_answer_may_have_run_the_flow(db):
    with raw_server(answer_token_then(hang_up)) as port:
        failure = invoke_failure(local_org(f"http://127.0.0.1:{port}"))

    assert (failure.code, failure.outcome) == ("CONNECTION_RESET", UNKNOWN)
    assert "broke before the answer arrived" in failure.message
    assert the_invoke_exchange().classification == Exchange.Classification.UNKNOWN


def test_a_refused_connection_never_ran_the_flow(db):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    org = local_org(f"http://127.0.0.1:{port}")
    with pytest.raises(SalesforceError) as caught:
        SalesforceClient(org).invoke(FLOW, [INPUT])

    failure = caught.value
    assert (failure.code, failure.outcome) == ("CONNECTION_REFUSED", NOT_RUN)
    assert failure.message == "127.0.0.1 refused the connection."
    assert "check the My Domain URL" in failure.hint


def test_a_host_that_does_not_resolve_says_so_and_what_to_check(db, settings):
    settings.FLOWGATE_EXTRA_SALESFORCE_HOSTS = ["acme-typo.invalid"]  # .invalid never resolves (RFC 6761)
    org = local_org("http://acme-typo.invalid")

    failure = invoke_failure(org)

    assert (failure.code, failure.outcome) == ("DNS_ERROR", NOT_RUN)
    assert failure.message == "The host acme-typo.invalid does not resolve (no such name in DNS)."
    assert "spelling of the My Domain URL" in failure.hint
    assert "HTTPConnectionPool" not in failure.message and "NameResolutionError" not in failure.message
    token_exchange = Exchange.objects.get(kind=Exchange.Kind.TOKEN)
    assert "NameResolutionError" in token_exchange.network_error  # the detail, for whoever digs


def test_a_tls_failure_never_ran_the_flow(db):
    def plain_http(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        conn.close()

    # https to a server that speaks plain http: the handshake fails before any request is sent.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            conn.recv(1024)
            plain_http(conn)
        except OSError:
            pass

    threading.Thread(target=serve, daemon=True).start()
    try:
        failure = invoke_failure(local_org(f"https://127.0.0.1:{port}"))
    finally:
        listener.close()

    assert (failure.code, failure.outcome) == ("TLS_ERROR", NOT_RUN)
    assert "TLS" in failure.message and "certificate" in failure.hint


# --- answers and simulated transport errors ---------------------------------------------------------------

INSTANCE = "https://acme.my.salesforce.com"
INVOKE_URL = f"{INSTANCE}/services/data/v65.0/actions/custom/flow/{FLOW}"


@pytest.fixture
def sf():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(f"{INSTANCE}/services/oauth2/token", json={**TOKEN, "instance_url": INSTANCE})
        yield mock


def html(status: int) -> dict:
    return dict(status=status, content_type="text/html", body="<html><body>Bad gateway</body></html>")


def rest(status: int, code: str, message: str = "refused") -> dict:
    return dict(status=status, json=[{"message": message, "errorCode": code}])


@pytest.mark.parametrize("answer, code, outcome", [
    (dict(status=200, json=PER_INPUT_SUCCESS), None, RAN),
    (dict(status=400, json=PER_INPUT_FAILURE), None, RAN),
    (dict(status=200, json=[]), "UNEXPECTED_RESPONSE", UNKNOWN),
    (html(500), "HTTP_500", UNKNOWN),
    (rest(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred."), "UNKNOWN_EXCEPTION", UNKNOWN),
    (html(502), "HTTP_502", UNKNOWN),
    (html(504), "HTTP_504", UNKNOWN),
    (html(503), "HTTP_503", NOT_RUN),
    (rest(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."), "REQUEST_LIMIT_EXCEEDED", NOT_RUN),
    (rest(403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded"), "REQUEST_LIMIT_EXCEEDED",
     NOT_RUN),
    (rest(400, "JSON_PARSER_ERROR", "Unexpected character"), "JSON_PARSER_ERROR", NOT_RUN),
    (rest(404, "NOT_FOUND", "The requested resource does not exist"), "NOT_FOUND", NOT_RUN),
    (rest(403, "INSUFFICIENT_ACCESS", "insufficient access rights"), "INSUFFICIENT_ACCESS", NOT_RUN),
    (rest(410, "NOT_FOUND", "Version retired"), "NOT_FOUND", NOT_RUN),
    (dict(status=429, body="slow down"), "HTTP_429", NOT_RUN),
    (dict(body=requests.ConnectTimeout("Connection to acme.my.salesforce.com timed out.")), "CONNECT_TIMEOUT",
     NOT_RUN),
    (dict(body=requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead")), "CONNECTION_RESET",
     UNKNOWN),
])
def test_each_answer_is_classified_recorded_and_hinted(db, org, sf, answer, code, outcome):
    sf.post(INVOKE_URL, **answer)

    if code is None:
        SalesforceClient(org).invoke(FLOW, [INPUT])
    else:
        failure = invoke_failure(org)
        assert (failure.code, failure.outcome) == (code, outcome)
        assert failure.hint, f"{code} has no hint"
    assert the_invoke_exchange().classification == outcome


def test_a_401_renewed_and_repeated_records_the_refused_call_as_not_run(db, org, sf):
    sf.post(INVOKE_URL, json=[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
            status=401)
    sf.post(INVOKE_URL, json=PER_INPUT_SUCCESS)

    SalesforceClient(org).invoke(FLOW, [INPUT])

    classes = list(Exchange.objects.filter(kind=Exchange.Kind.INVOKE).order_by("id")
                   .values_list("response_status", "classification"))
    assert classes == [(401, NOT_RUN), (200, RAN)]


def test_only_invokes_are_classified(db, org, sf):
    sf.get(f"{INSTANCE}/services/data/v65.0/limits/", json={"DailyApiRequests": {"Max": 5, "Remaining": 4}})

    SalesforceClient(org).limits()

    assert set(Exchange.objects.values_list("classification", flat=True)) == {""}


def test_the_outcome_rule_itself():
    assert [invoke_outcome(status, False) for status in (200, 400, 401, 403, 404, 410, 429, 500, 502, 503, 504)] \
        == [UNKNOWN, NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN, UNKNOWN, UNKNOWN, NOT_RUN, UNKNOWN]
    assert invoke_outcome(400, True) == invoke_outcome(200, True) == RAN


# --- hints ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code, phrase", [
    ("UNKNOWN_EXCEPTION", "Paused and Failed Flow Interviews"),
    ("CANNOT_EXECUTE_FLOW_TRIGGER", "fault path"),
    ("INSUFFICIENT_ACCESS", "Flow User"),
    ("SOME_NEW_CODE", "Paused and Failed Flow Interviews"),
])
def test_a_flow_that_ran_and_failed_gets_a_hint_where_to_look(code, phrase):
    assert phrase in flow_error_hint(code)


@pytest.mark.parametrize("code, status, phrase", [
    ("NOT_FOUND", 404, "shared with the External Client App's Run As user"),
    ("INVALID_SESSION_ID", 401, "Run As user is active"),
    ("HTTP_410", 410, "retired"),
    ("DNS_ERROR", None, "spelling"),
    ("TLS_ERROR", None, "certificate"),
    ("CONNECTION_REFUSED", None, "My Domain URL"),
    ("TIMEOUT", None, "may have run"),
    ("HTTP_418", 418, "its message says why"),
    ("HTTP_599", 599, "retried automatically"),
])
def test_every_failure_has_a_hint(code, status, phrase):
    assert phrase in default_hint(code, status)
