"""The OpenAPI 3 document of the JSON API, served at /api/v1/openapi.json. tests/api/test_openapi.py runs
schemathesis against it, so it must say exactly what the views do."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..models import Trigger
from .selectors import MAX_ID
from .services import IDEMPOTENCY_KEY_PATTERN, MAX_BATCH_ITEMS

SLUG = r"^[-a-zA-Z0-9_]+$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


AUTH_ERRORS = {
    "401": _error("No API key, or an invalid or revoked one."),
    "404": _error("No such org or flow (or trigger), or one the API key is not scoped to: the same answer."),
    "405": _error("Another method than the ones listed."),
}
BODY_ERRORS = {
    "413": _error("The body is larger than 256 KiB (checked before it is read)."),
    "415": _error("The body is not sent as application/json in UTF-8."),
}
FLOW_PARAMETERS = [
    {"name": "org_slug", "in": "path", "required": True, "description": "The org's slug, e.g. demo.",
     "schema": {"type": "string", "pattern": SLUG, "minLength": 1, "maxLength": 60}, "example": "demo"},
    {"name": "flow_api_name", "in": "path", "required": True, "description": "The flow's API name.",
     "schema": {"type": "string", "pattern": SLUG, "minLength": 1, "maxLength": 80}, "example": "On_Demand_Flow"},
]
TRIGGER_STATUS = {"type": "string", "enum": list(Trigger.Status.values)}
LOCATION = {"Location": {"description": "The trigger's URL.", "schema": {"type": "string"}}}

SCHEMAS: dict[str, Any] = {
    "Inputs": {
        "type": "object",
        "description": "Input name → value, typed as the flow's inputs (text, number, true/false, YYYY-MM-DD, "
                       "ISO 8601 date-time with a zone, an object for a record, a list for a collection). Null "
                       "means not given. A text input with a format takes only an e-mail address (format email) "
                       "or a phone number in E.164 form, ^\\+[1-9][0-9]{1,14}$ without spaces (format e164), "
                       "each item of a collection alike; blank counts as not given.",
        "additionalProperties": True,
        "example": {"IndividualId": "003Ho00002AlRM8IAN", "EmailAddress": "ada@example.com"},
    },
    "TriggerRequest": {
        "type": "object",
        "required": ["inputs"],
        "additionalProperties": False,
        "properties": {"inputs": _ref("Inputs")},
    },
    "TriggerAccepted": {
        "type": "object",
        "required": ["id", "status", "url"],
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "status": TRIGGER_STATUS,
            "url": {"type": "string", "example": "/api/v1/triggers/42"},
        },
    },
    "TriggerError": {
        "type": ["object", "null"],
        "required": ["code", "message", "hint"],
        "properties": {
            "code": {"type": "string", "example": "INVALID_INPUT"},
            "message": {"type": "string", "description": "Salesforce's message, or Flowgate's."},
            "hint": {"type": "string", "description": "What to do about it; may be empty."},
        },
    },
    "Trigger": {
        "type": "object",
        "required": ["id", "key", "status", "attempts", "outputs", "error", "url", "created_at", "finished_at",
                     "resends"],
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "key": {"type": "string", "format": "uuid",
                    "description": "The trigger's own id, the same on every automatic retry (a re-send gets a new "
                                   "one). Sent to the flow in its trigger id input when the flow has one."},
            "status": {**TRIGGER_STATUS, "description": "unknown: the flow's delivery is at most once and "
                                                        "Salesforce's answer was lost, so it may have run; a person "
                                                        "decides (Mark as delivered, or Re-send)."},
            "attempts": {"type": "integer", "minimum": 0},
            "outputs": {"description": "The flow's output variables once it succeeded, else null."},
            "error": _ref("TriggerError"),
            "url": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "resends": {
                "type": "array",
                "description": "Triggers that re-sent this one (from the console), oldest first.",
                "items": {"type": "object", "required": ["id", "url"],
                          "properties": {"id": {"type": "integer"}, "url": {"type": "string"}}},
            },
        },
    },
    "InputErrors": {
        "type": "object",
        "required": ["errors"],
        "properties": {
            "errors": {
                "type": "object",
                "description": "Every problem, by input name.",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
                "example": {"IndividualId": ["This input is required."]},
            },
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "description": "What is wrong, for a person to read."},
            "id": {"type": "integer", "description": "409: the trigger the idempotency key belongs to."},
            "url": {"type": "string", "description": "409: that trigger's URL."},
        },
    },
    "BatchItem": {
        "type": "object",
        "required": ["inputs"],
        "additionalProperties": False,
        "properties": {
            "inputs": _ref("Inputs"),
            "idempotency_key": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN.pattern, "minLength": 1,
                                "maxLength": 255},
        },
    },
    "BatchRequest": {
        "type": "object",
        "required": ["items"],
        "additionalProperties": False,
        "properties": {"items": {
            "type": "array", "minItems": 1, "maxItems": MAX_BATCH_ITEMS,
            # Any item is taken: one that is not a BatchItem gets its own "invalid" result, the others go on.
            "items": {"anyOf": [_ref("BatchItem"), {}], "description": "A BatchItem; anything else is answered "
                                                                      "with an invalid result for that item."},
        }},
        "example": {"items": [
            {"inputs": {"IndividualId": "003Ho00002AlRM8IAN", "EmailAddress": "ada@example.com"},
             "idempotency_key": "order-1001"},
            {"inputs": {"IndividualId": "003Ho00002AlRM9IAN"}},
        ]},
    },
    "BatchResult": {
        "type": "object",
        "required": ["index", "result"],
        "description": "created / existing: id, status and url as a single POST answers (202 / 200); invalid / "
                       "conflict: errors as a single POST answers (400 / 409).",
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "result": {"type": "string", "enum": ["created", "existing", "invalid", "conflict"]},
            "id": {"type": "integer"},
            "status": {"type": "string"},
            "url": {"type": "string"},
            "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
        },
    },
    "BatchResponse": {
        "type": "object",
        "required": ["results"],
        "properties": {"results": {"type": "array", "items": _ref("BatchResult")}},
    },
}


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Flowgate API",
            "version": "1",
            "description": "Fire Salesforce On-Demand Flows and follow the triggers. Authenticate with "
                           "`Authorization: Bearer KEY` (an API key from the admin or `manage.py create_api_key`). "
                           "Bodies are JSON, at most 256 KiB.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"apiKey": []}],
        "paths": {
            "/flows/{org_slug}/{flow_api_name}/triggers": {
                "parameters": FLOW_PARAMETERS,
                "post": {
                    "operationId": "createTrigger",
                    "summary": "Fire a flow once",
                    "description": "Validates the inputs, stores one trigger and queues it; never waits for "
                                   "Salesforce. Follow it at the returned url.",
                    "parameters": [{
                        "name": "Idempotency-Key", "in": "header", "required": False,
                        "description": "Same key and same inputs: 200 with the trigger it created, nothing sent "
                                       "again. Same key, other inputs: 409. Keys are per flow.",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                                   "pattern": IDEMPOTENCY_KEY_PATTERN.pattern},
                    }],
                    "requestBody": {"required": True,
                                    "content": {"application/json": {"schema": _ref("TriggerRequest")}}},
                    "responses": {
                        "202": _json(_ref("TriggerAccepted"), "Queued.", LOCATION),
                        "200": _json(_ref("TriggerAccepted"), "Replayed: the trigger this Idempotency-Key "
                                                              "created with the same inputs.", LOCATION),
                        "400": _json({"oneOf": [_ref("InputErrors"), _ref("Error")]},
                                     "Invalid inputs ({errors}, every problem named, nothing stored), or a body "
                                     "that is not a JSON object {\"inputs\": {...}}, or a bad Idempotency-Key "
                                     "({error})."),
                        "409": _error("The Idempotency-Key was used with other inputs."),
                        **AUTH_ERRORS,
                        **BODY_ERRORS,
                    },
                },
            },
            "/flows/{org_slug}/{flow_api_name}/triggers/batch": {
                "parameters": FLOW_PARAMETERS,
                "post": {
                    "operationId": "createTriggers",
                    "summary": "Fire a flow for up to 1,000 sets of inputs",
                    "description": "One result per item, in order. Valid items are accepted even when others "
                                   "are invalid.",
                    "requestBody": {"required": True,
                                    "content": {"application/json": {"schema": _ref("BatchRequest")}}},
                    "responses": {
                        "207": _json(_ref("BatchResponse"), "One result per item."),
                        "400": _error("Not a JSON object {\"items\": [1 to 1,000 items]}."),
                        **AUTH_ERRORS,
                        **BODY_ERRORS,
                    },
                },
            },
            "/triggers/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": True,
                                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}],
                "get": {
                    "operationId": "getTrigger",
                    "summary": "A trigger's status, attempts, outputs, error and re-sends",
                    "description": "Only keys scoped to the trigger's flow may read it.",
                    "responses": {"200": _json(_ref("Trigger"), "The trigger."), **AUTH_ERRORS},
                },
            },
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                           "description": "An API key: fg_xxxxxxxx_…"}},
            "schemas": SCHEMAS,
        },
    }
