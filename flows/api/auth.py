"""Bearer API keys at the edge of the API: 401 without a valid key; a flow outside its scope is not found (404).

A key scoped to some flows must not learn which other flows, orgs or trigger ids exist: "not yours" answers
exactly as "does not exist" does, the same status and the same body."""

from __future__ import annotations

from django.http import HttpRequest
from django.views.decorators.debug import sensitive_variables

from ..models import Flow
from .http import HttpError
from .models import ApiKey
from .selectors import api_key_allows
from .services import api_key_authenticate

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="flowgate"'}


@sensitive_variables("header", "raw_key")
def authenticate(request: HttpRequest) -> ApiKey:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, raw_key = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not raw_key.strip():
        raise HttpError(401, "Send an API key: Authorization: Bearer KEY.", headers=CHALLENGE)
    api_key = api_key_authenticate(raw_key=raw_key.strip())
    if api_key is None:
        raise HttpError(401, "The API key is invalid or revoked.", headers=CHALLENGE)
    return api_key


def in_scope(api_key: ApiKey, flow: Flow | None) -> Flow | None:
    """The flow when it exists and the key may use it, else None: the caller answers 404 for both."""
    if flow is None or not api_key_allows(api_key=api_key, flow_id=flow.pk):
        return None
    return flow
