"""Where PostgreSQL must plan each query for its own values.

With prepared statements (DATABASE_PREPARED_STATEMENTS, on by default), PostgreSQL may switch a statement run
five times to one generic plan made without its values. That is what the hot path wants (every query of a
dispatch and of the API is by key), and what the console does not: for a search by input value the generic
plan made the console's search ×3 slower at 100,000 triggers (p99 1.1 s), and it grows with the table
(bench/scale.py). The pages people use (console, admin) and the resend jobs, which run the console's filters,
plan every query for its values instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse

PAGE_PREFIXES = ("/console/", "/admin/")


def _prepares() -> bool:
    return connection.vendor == "postgresql" and bool(connection.settings_dict.get("OPTIONS", {}).get(
        "prepare_threshold"))


@contextmanager
def custom_plans() -> Iterator[None]:
    if not _prepares():
        yield
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET plan_cache_mode = force_custom_plan")
    except DatabaseError:
        # The database is unreachable: the work inside meets the same error where it is handled (a page answers
        # 503, see flows/middleware.py), not here, where it could only be a 500.
        yield
        return
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("RESET plan_cache_mode")
        except DatabaseError:
            connection.close()  # a connection left in a failed state must not keep the setting for the next user


class CustomPlansMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(PAGE_PREFIXES):
            return self.get_response(request)
        with custom_plans():
            return self.get_response(request)
