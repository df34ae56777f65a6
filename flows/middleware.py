"""The database being unavailable is an outage, not a bug: answer 503 with Retry-After instead of a 500.

API clients and Shopify retry a 503 later (Shopify retries any non-2xx for hours), while a 500 reads as
"Flowgate is broken". Nothing else is needed to recover: the web processes keep running, and Django's health
checks (CONN_HEALTH_CHECKS) replace the broken connections on the first request after the database is back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
# The JSON endpoints: their callers are programs and parse the error like every other answer there.
JSON_PREFIXES = ("/api/", "/hooks/")
MESSAGE = "The database is unavailable for a moment. Try again shortly."
API_MESSAGE = f"{MESSAGE} Send an Idempotency-Key: a retry with the same key never creates a second trigger."


class DatabaseUnavailableMiddleware:
    """Turns OperationalError and InterfaceError (connection refused, closed or lost; the server shutting down)
    raised by a view into a 503. Django hands view exceptions to process_exception; other errors pass on."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        # One line, no traceback: an outage would otherwise flood the log with identical traces.
        logger.warning("Database unavailable, answered 503 to %s %s: %s", request.method, request.path,
                       str(exception).strip()[:300])
        if request.path.startswith(JSON_PREFIXES):
            message = API_MESSAGE if request.path.startswith("/api/") else MESSAGE
            response: HttpResponse = JsonResponse({"error": message}, status=503)
        else:
            response = HttpResponse(MESSAGE, status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        response["Cache-Control"] = "no-store"
        return response
