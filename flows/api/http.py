"""What the API and the webhooks share at the HTTP edge: body limits, strict JSON, JSON errors, storable text."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from ..inputs import text_problem

DEFAULT_MAX_BODY_BYTES = 256 * 1024


class HttpError(Exception):
    """Ends a request with a JSON error: {"error": message, **extra}."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def response(self) -> JsonResponse:
        response = JsonResponse({"error": self.message, **self.extra}, status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        return response


def json_view(*methods: str) -> Callable:
    """A JSON endpoint: csrf_exempt (callers authenticate with a key or a signature, never a session cookie),
    405 for other methods, HttpError turned into its JSON answer, nothing cached."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                error = HttpError(405, f"Use {' or '.join(methods)}.", headers={"Allow": ", ".join(methods)})
                response = error.response()
            else:
                try:
                    response = view(request, *args, **kwargs)
                except HttpError as error:
                    response = error.response()
            response["Cache-Control"] = "no-store"
            return response

        return csrf_exempt(wrapped)

    return decorator


def max_body_bytes() -> int:
    return int(getattr(settings, "FLOWGATE_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))


def read_body(request: HttpRequest) -> bytes:
    """The raw body, refused with 413 when over the limit before any of it is read or parsed."""
    limit = max_body_bytes()
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise HttpError(400, "The Content-Length header is not a number.") from None
    if declared > limit:
        raise HttpError(413, f"The body is larger than {limit // 1024} KiB.")
    body = request.body
    if len(body) > limit:
        raise HttpError(413, f"The body is larger than {limit // 1024} KiB.")
    return body


class InvalidJson(ValueError):
    """A body that is not strict JSON; the message says why, for the caller."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:40]} is too large a number")
    return value


def parse_json(body: bytes) -> Any:
    """Strict JSON from UTF-8 bytes (no NaN or Infinity, no number too large to store); InvalidJson otherwise."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidJson(f"The body is not valid UTF-8 (at byte {error.start}).") from None
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise InvalidJson("The body is not valid JSON: it is nested too deeply.") from None
    except ValueError as error:
        raise InvalidJson(f"The body is not valid JSON: {str(error)[:200]}") from None


def _storable_text(text: str) -> bool:
    return text_problem(text) is None  # no NUL, no unpaired surrogate such as "\ud800"


def is_storable(value: Any) -> bool:
    """False when some text in the JSON value (keys included) holds a NUL or an unpaired surrogate, which
    PostgreSQL cannot store."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not _storable_text(item):
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def storable_text(text: str, limit: int | None = None) -> str:
    """Text as it can be stored and shown: NULs and unpaired surrogates replaced, cut at `limit` with a marker."""
    if not _storable_text(text):
        text = text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}\n…[cut: {len(text) - limit} more characters]"
    return text
