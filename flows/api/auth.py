"""Bearer API keys at the edge of the API: 401 without a valid key, 403 for a flow outside its scope."""

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


def require_scope(api_key: ApiKey, flow: Flow) -> None:
    if not api_key_allows(api_key=api_key, flow_id=flow.pk):
        raise HttpError(403, f"This API key may not use the flow {flow.org.slug}/{flow.api_name}.")
