"""The JSON API, version 1: parse the request, call a service, render JSON. Contract in openapi.py."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse

from ..inputs import InputValidationError
from ..models import Flow
from ..services import IdempotencyConflict
from . import selectors, services
from .auth import authenticate, in_scope
from .http import HttpError, InvalidJson, is_storable, json_view, parse_json, read_body
from .models import ApiKey
from .openapi import openapi_document

JSON_TYPES = {"application/json"}


def _key_and_flow(request: HttpRequest, org_slug: str, flow_api_name: str) -> tuple[ApiKey, Flow]:
    """401 without a valid key; 404, with one body, for an unknown org or flow and for a flow outside the key's
    scope."""
    api_key = authenticate(request)
    flow = in_scope(api_key, selectors.flow_for_api(org_slug=org_slug, api_name=flow_api_name))
    if flow is None:
        raise HttpError(404, f"No flow {flow_api_name!r} in org {org_slug!r}.")
    return api_key, flow


def _json_object(request: HttpRequest, field: str) -> Any:
    """The body's one field (`inputs` or `items`): application/json, at most the size limit, an object."""
    if request.content_type not in JSON_TYPES:
        raise HttpError(415, "Send the body as JSON with Content-Type: application/json.")
    if request.content_params.get("charset", "utf-8").lower() not in ("utf-8", "utf8"):
        raise HttpError(415, "Send the body as UTF-8.")
    try:
        body = parse_json(read_body(request))
    except InvalidJson as error:
        raise HttpError(400, str(error)) from None
    if not isinstance(body, dict):
        raise HttpError(400, f'The body must be a JSON object: {{"{field}": ...}}.')
    if field not in body or set(body) != {field}:
        unknown = ", ".join(sorted(repr(name) for name in set(body) - {field})[:5])
        raise HttpError(400, f'The body must be {{"{field}": ...}}' + (f"; unknown: {unknown}." if unknown else "."))
    if not is_storable(body):
        raise HttpError(400, "The body holds a NUL character or an unpaired surrogate (\\u0000, \\ud800…).")
    return body[field]


def _idempotency_key(request: HttpRequest) -> str | None:
    value = request.headers.get("Idempotency-Key")
    if problem := services.idempotency_key_problem(value):
        raise HttpError(400, f"Idempotency-Key: {problem}")
    return value


@json_view("POST")
def trigger_create(request: HttpRequest, org_slug: str, flow_api_name: str) -> JsonResponse:
    api_key, flow = _key_and_flow(request, org_slug, flow_api_name)
    idempotency_key = _idempotency_key(request)
    inputs = _json_object(request, "inputs")
    try:
        trigger = services.api_trigger_create(api_key=api_key, flow=flow, inputs=inputs,
                                              idempotency_key=idempotency_key)
    except InputValidationError as invalid:
        return JsonResponse({"errors": invalid.errors}, status=400)
    except IdempotencyConflict as conflict:
        existing = conflict.existing
        raise HttpError(409, f"This Idempotency-Key was used with other inputs, for trigger {existing.pk}.",
                        id=existing.pk, url=selectors.trigger_url(existing.pk)) from None
    body = selectors.trigger_accepted_dict(trigger)
    response = JsonResponse(body, status=200 if trigger.replayed else 202)
    response["Location"] = body["url"]
    return response


@json_view("POST")
def trigger_batch(request: HttpRequest, org_slug: str, flow_api_name: str) -> JsonResponse:
    api_key, flow = _key_and_flow(request, org_slug, flow_api_name)
    items = _json_object(request, "items")
    if not isinstance(items, list) or not 1 <= len(items) <= services.MAX_BATCH_ITEMS:
        raise HttpError(400, f'"items" must be a list of 1 to {services.MAX_BATCH_ITEMS} items.')
    results = services.api_trigger_batch(api_key=api_key, flow=flow, items=items)
    return JsonResponse({"results": results}, status=207)


@json_view("GET")
def trigger_detail(request: HttpRequest, trigger_id: str) -> JsonResponse:
    api_key = authenticate(request)
    trigger = selectors.trigger_for_api(trigger_id=trigger_id)
    if trigger is None or in_scope(api_key, trigger.flow) is None:
        raise HttpError(404, f"No trigger {trigger_id[:40]!r}.")
    return JsonResponse(selectors.trigger_api_dict(trigger))


@json_view("GET")
def openapi(request: HttpRequest) -> JsonResponse:
    """Public: the document describes the API and holds no data."""
    return JsonResponse(openapi_document())


@json_view("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
def not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    raise HttpError(404, "No such API endpoint: see /api/v1/openapi.json.")
