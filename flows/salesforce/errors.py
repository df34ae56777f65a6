from __future__ import annotations

import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3 import exceptions as urllib3_errors

# What a failed call says of the flow (salesforce-api facts, section 7; Exchange.Classification's values).
RAN = "ran"
NOT_RUN = "not_run"
UNKNOWN = "unknown"


class SalesforceError(Exception):
    """A call that did not get a usable answer.

    `permanent` says whether trying again can help; `outcome` whether the flow may have run all the same
    (UNKNOWN: the answer was lost after Salesforce got the request) or certainly did not (NOT_RUN, safe to retry).
    Every failure a person can act on carries a hint; the technical detail stays in the Exchange.
    """

    def __init__(self, code: str, message: str, *, permanent: bool, hint: str = "", status: int | None = None,
                 outcome: str = NOT_RUN):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.permanent = permanent
        self.status = status
        self.outcome = outcome
        self.hint = hint or default_hint(code, status, outcome)

    @property
    def may_have_run(self) -> bool:
        return self.outcome == UNKNOWN

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "hint": self.hint, "permanent": self.permanent,
                "status": self.status, "outcome": self.outcome}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SalesforceError:
        return cls(data["code"], data["message"], permanent=data["permanent"], hint=data.get("hint", ""),
                   status=data.get("status"), outcome=data.get("outcome", NOT_RUN))


FLOW_NOT_FOUND_HINT = (
    "Salesforce does not find this flow: check the API name (exactly the flow's API name in Salesforce), that the "
    "flow is active, that it is shared with the External Client App's Run As user (who needs the Flow User "
    "permission), and that the org offers the API version set on the org."
)
CLIENT_APP_POLICY_HINT = (
    "In the External Client App's policies, enable the Client Credentials Flow and set its Run As user."
)
FLOW_FAULT_HINT = (
    "The flow failed inside Salesforce (usually one of its elements: a value it expected was empty, or a record "
    "it changed was refused); sending it again rarely helps. Find the failed interview in Setup, Paused and Failed "
    "Flow Interviews (Salesforce also e-mails the error to the flow's last modifier), fix the flow, then re-send. "
    "Giving the flow a fault path that sets an output variable makes the cause show here next time."
)
ACCESS_HINT = (
    "The Run As user of the External Client App lacks access: give it the Flow User permission (or Run Flows), "
    "access to this flow, and access to the records and fields the flow reads and changes."
)
UNKNOWN_OUTCOME_HINT = (
    "Salesforce may have run the flow: the request reached it, but its answer was lost. With delivery at least "
    "once it is retried (the customer may get it twice); give the flow a trigger id input to make that safe."
)

# salesforce-api.md section 1: token errors and what the admin must fix.
TOKEN_ERROR_HINTS: list[tuple[str, str, str]] = [
    ("invalid_grant", "no client credentials user", CLIENT_APP_POLICY_HINT),
    ("invalid_grant", "not supported on this domain",
     "Use the org's My Domain URL (https://NAME.my.salesforce.com), not login.salesforce.com, "
     "test.salesforce.com or the setup domain."),
    ("invalid_client_id", "",
     "The consumer key is wrong: copy it again from the External Client App (OAuth settings, Consumer Key "
     "and Secret) and save it on the org's External Client App."),
    ("invalid_client", "",
     "The consumer secret is wrong: copy it again from the External Client App (OAuth settings, Consumer Key "
     "and Secret) and save it on the org's External Client App."),
    ("unsupported_grant_type", "",
     "Enable the Client Credentials Flow in the External Client App's OAuth settings and set its Run As user."),
    ("invalid_grant", "", CLIENT_APP_POLICY_HINT),
]

HINTS: dict[str, str] = {
    # Answers of Salesforce's REST API and of a flow interview (statusCode of a per-input error).
    "REQUEST_LIMIT_EXCEEDED": "The org has used its daily API requests; calls resume as its 24-hour window "
                              "rolls on, or raise the org's limit in Salesforce.",
    "CONCURRENT_LIMIT": "More than 25 long-running requests were running in the org at once (5 on Developer "
                        "Edition). It clears within seconds; Flowgate waits a few seconds and tries again without "
                        "using a retry. If it keeps happening, lower the org's concurrent calls in Flowgate.",
    "API_DISABLED_FOR_ORG": "The org's edition or the Run As user's profile has no API access: enable "
                            "\"API Enabled\" for the Run As user.",
    "API_CURRENTLY_DISABLED": "The org's API is disabled right now: check the Run As user's \"API Enabled\" "
                              "permission and the org's status.",
    "INVALID_SESSION_ID": "Salesforce refused a token it had just issued: check that the Run As user is active "
                          "and has \"API Enabled\", and that the External Client App's session policies allow it.",
    "API_VERSION_RETIRED": "This API version is retired: choose a newer one on the org's page (Test connection "
                           "lists the versions the org offers).",
    "NOT_FOUND": FLOW_NOT_FOUND_HINT,
    "UNKNOWN_EXCEPTION": FLOW_FAULT_HINT,
    "CANNOT_EXECUTE_FLOW_TRIGGER": FLOW_FAULT_HINT,
    "FLOW_ERROR": FLOW_FAULT_HINT,
    "INSUFFICIENT_ACCESS": ACCESS_HINT,
    "INSUFFICIENT_ACCESS_OR_READONLY": ACCESS_HINT,
    "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY": ACCESS_HINT,
    "JSON_PARSER_ERROR": "Salesforce could not read the request's inputs: check that each input's type in "
                         "Flowgate matches the flow variable's type (import the flow again to compare).",
    "INVALID_INPUT": "An input does not match the flow's variables: import the flow again so Flowgate's inputs "
                     "match its variables' names and types.",
    "UNEXPECTED_RESPONSE": "Salesforce's answer did not have one result per input, so the flow may have run. "
                           "Check the exchange below; if it repeats, the flow or an org customization answers "
                           "unusually.",
    "REDIRECT": "Check the org's My Domain URL: Salesforce answers redirects for the wrong domain.",
    # Flowgate's own failures around a call.
    "DNS_ERROR": "The org's host name does not resolve: check the spelling of the My Domain URL on the org's page "
                 "(https://NAME.my.salesforce.com).",
    "CONNECTION_REFUSED": "Nothing answered at the org's address: check the My Domain URL, and any proxy or "
                          "firewall between Flowgate and Salesforce. Nothing was sent; it is retried.",
    "NETWORK_UNREACHABLE": "No route to the org's address: check the network, proxy or firewall between "
                           "Flowgate and Salesforce, and the My Domain URL. Nothing was sent; it is retried.",
    "CONNECT_TIMEOUT": "Salesforce did not accept the connection in time. Nothing was sent; it is retried. If it "
                       "persists, check the network or proxy between Flowgate and Salesforce.",
    "TLS_ERROR": "The secure connection could not be set up (a certificate for another host, or a proxy that "
                 "intercepts TLS): check the My Domain URL and the proxy. Nothing was sent.",
    "TIMEOUT": "Salesforce did not answer in time (FLOWGATE_HTTP_READ_TIMEOUT). " + UNKNOWN_OUTCOME_HINT,
    "CONNECTION_RESET": "The connection broke before Salesforce's answer arrived. " + UNKNOWN_OUTCOME_HINT,
    "NETWORK_ERROR": "The call to Salesforce failed on the network; it is retried. If it persists, check the "
                     "network and proxy between Flowgate and Salesforce.",
    "TOKEN_WAIT_TIMEOUT": "Another worker's token request took too long; nothing was sent and it is retried. If "
                          "it persists, use Test connection on the org's page.",
    "LEASE_EXHAUSTED": "This attempt ran out of time before it could call Salesforce (waiting for a token took "
                       "most of it); nothing was sent and it is retried.",
    "WORKER_LOST": "The worker stopped (a crash, a deploy, a lost machine) while sending this trigger, so "
                   "Salesforce may have run the flow.",
    "INACTIVE": "Activate it, then re-send the trigger.",
    "NO_CLIENT_APP": "Add the External Client App's consumer key and secret on the org's page.",
    "DECRYPTION_FAILED": "Restore the encryption key the credentials were saved with, or enter the credentials "
                         "again.",
    "DISALLOWED_HOST": "Fix the org's My Domain URL: Flowgate sends credentials only to Salesforce's API hosts.",
    "DISALLOWED_INSTANCE_URL": "The org's My Domain URL must be the org's own Salesforce API host.",
}


def default_hint(code: str, status: int | None = None, outcome: str = NOT_RUN) -> str:
    """What a person can do about a failure: by its code, else by its HTTP status, else by what it says of the
    flow. Never empty, so no failure reaches a page without one."""
    if code in HINTS:
        return HINTS[code]
    if status == 410:
        return HINTS["API_VERSION_RETIRED"]
    if outcome == UNKNOWN:
        return UNKNOWN_OUTCOME_HINT
    if status == 429 or (status is not None and status >= 500):
        return ("Salesforce was unavailable or overloaded; it is retried automatically. If it lasts, check "
                "status.salesforce.com for the org's instance.")
    if status is not None and 400 <= status < 500:
        return "Salesforce refused the request; its message says why. Fix that, then re-send."
    return ("Salesforce's message says what the flow refused: fix the inputs or the flow, then re-send. The "
            "failed interview is in Setup, Paused and Failed Flow Interviews.")


def flow_error_hint(code: str) -> str:
    """The hint for a per-input failure (a flow interview that ran and failed)."""
    return HINTS.get(code) or default_hint("FLOW_ERROR")


def token_error_hint(error: str, description: str) -> str:
    description = description.lower()
    for code, fragment, hint in TOKEN_ERROR_HINTS:
        if error == code and fragment in description:
            return hint
    return ""


def is_daily_limit(code: str, message: str) -> bool:
    """REQUEST_LIMIT_EXCEEDED means the daily allocation only with this message; otherwise (ConcurrentPerOrgLongTxn,
    or a message we do not know) it is a concurrency limit that clears in seconds."""
    return code == "REQUEST_LIMIT_EXCEEDED" and "totalrequests" in message.replace(" ", "").lower()


# --- network failures: what happened, and whether the request can have reached Salesforce -------------------


def _causes(error: BaseException) -> list[BaseException]:
    """The error and what it wraps: requests keeps urllib3's error in args[0], urllib3 its cause in `reason`."""
    seen: list[BaseException] = []
    todo: list[Any] = [error]
    while todo and len(seen) < 12:
        item = todo.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        todo.extend([getattr(item, "reason", None), item.__cause__, item.__context__,
                     *(arg for arg in item.args if isinstance(arg, BaseException))])
    return seen


def network_failure(error: requests.RequestException, url: str, *, flow_call: bool) -> SalesforceError:
    """A plain sentence for a call that got no HTTP answer. A failure before the request could be sent (DNS,
    refused, connect timeout, TLS) is NOT_RUN; one after (a read timeout, a reset, a broken body) may have run the
    flow when the call was a flow invoke (`flow_call`)."""
    host = urlsplit(url).hostname or url
    causes = _causes(error)

    def has(*kinds: type) -> bool:
        return any(isinstance(cause, kinds) for cause in causes)

    after_sending = UNKNOWN if flow_call else NOT_RUN
    if has(urllib3_errors.NameResolutionError, socket.gaierror):
        return SalesforceError("DNS_ERROR", f"The host {host} does not resolve (no such name in DNS).",
                               permanent=False)
    # urllib3's NewConnectionError (never connected: refused, unreachable) is also a ConnectTimeoutError: first.
    if has(urllib3_errors.NewConnectionError, ConnectionRefusedError):
        if has(ConnectionRefusedError) or "refused" in str(error).lower():
            return SalesforceError("CONNECTION_REFUSED", f"{host} refused the connection.", permanent=False)
        return SalesforceError("NETWORK_UNREACHABLE", f"{host} could not be reached.", permanent=False)
    if isinstance(error, requests.ConnectTimeout) or has(urllib3_errors.ConnectTimeoutError):
        return SalesforceError("CONNECT_TIMEOUT", f"{host} did not accept a connection in time.", permanent=False)
    if isinstance(error, requests.exceptions.SSLError) or has(ssl.SSLError, urllib3_errors.SSLError):
        return SalesforceError("TLS_ERROR", f"The secure connection to {host} failed (TLS).", permanent=False)
    if isinstance(error, requests.ReadTimeout) or has(urllib3_errors.ReadTimeoutError):
        return SalesforceError("TIMEOUT", f"{host} took the request but did not answer in time.", permanent=False,
                               outcome=after_sending)
    if isinstance(error, requests.exceptions.ProxyError):
        return SalesforceError("NETWORK_ERROR", f"The proxy in front of {host} failed.", permanent=False,
                               outcome=after_sending)
    if isinstance(error, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)) or has(
        urllib3_errors.ProtocolError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError,
        urllib3_errors.IncompleteRead,
    ):
        return SalesforceError("CONNECTION_RESET", f"The connection to {host} broke before the answer arrived.",
                               permanent=False, outcome=after_sending)
    return SalesforceError("NETWORK_ERROR", f"The call to {host} failed on the network.", permanent=False,
                           outcome=after_sending)


def invoke_outcome(status: int, per_input_answer: bool) -> str:
    """Whether an HTTP answer to a flow invoke means the flow ran, did not, or may have (section 7): per-input
    results mean it ran; 502, 504 and a 500 without them may hide a run; every other refusal came before it."""
    if per_input_answer:
        return RAN
    if status == 200 or status in (500, 502, 504) or status > 504:
        return UNKNOWN
    return NOT_RUN
