from __future__ import annotations

from typing import Any


class SalesforceError(Exception):
    """A call that did not get a usable answer. `permanent` says whether trying again can help."""

    def __init__(self, code: str, message: str, *, permanent: bool, hint: str = "", status: int | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.permanent = permanent
        self.hint = hint
        self.status = status

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "hint": self.hint, "permanent": self.permanent,
                "status": self.status}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SalesforceError:
        return cls(data["code"], data["message"], permanent=data["permanent"], hint=data.get("hint", ""),
                   status=data.get("status"))


FLOW_NOT_FOUND_HINT = (
    "Check the API name, that the flow is active, shared with the run-as user, who is a Flow User."
)
CLIENT_APP_POLICY_HINT = (
    "In the External Client App's policies, enable the Client Credentials Flow and set its Run As user."
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

REST_ERROR_HINTS: dict[str, str] = {
    "REQUEST_LIMIT_EXCEEDED": "The org has used its daily API requests; calls resume as its 24-hour window "
                              "rolls on, or raise the org's limit in Salesforce.",
    "API_DISABLED_FOR_ORG": "The org's edition or the run-as user's profile has no API access: enable "
                            "\"API Enabled\" for the run-as user.",
    "API_CURRENTLY_DISABLED": "The org's API is disabled right now: check the run-as user's \"API Enabled\" "
                              "permission and the org's status.",
    "INVALID_SESSION_ID": "Salesforce refused a token it had just issued: check that the run-as user is active "
                          "and has \"API Enabled\".",
    "API_VERSION_RETIRED": "This API version is retired: choose a newer one on the org's page.",
}


def token_error_hint(error: str, description: str) -> str:
    description = description.lower()
    for code, fragment, hint in TOKEN_ERROR_HINTS:
        if error == code and fragment in description:
            return hint
    return ""
