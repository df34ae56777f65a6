"""DatabaseUnavailableMiddleware: a view that cannot reach the database answers 503 with Retry-After.

Fast and in-process: the database failure is raised where the view first touches the database. The real outage
(PostgreSQL stopped under load, the portal recovering by itself) is test_outages.py's.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, ProgrammingError
from django.test import Client, RequestFactory

from flows.middleware import RETRY_AFTER_SECONDS, DatabaseUnavailableMiddleware

REFUSED = 'connection to server at "127.0.0.1", port 5432 failed: Connection refused'
TRIGGERS = "/api/v1/flows/acme/On_Demand_Flow/triggers"
HEADERS = {"Authorization": "Bearer fg_0123abcd_" + "x" * 43}


def fail_with(monkeypatch, target: str, error: Exception) -> None:
    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(target, failing)


def assert_json_503(response) -> dict:
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response["Cache-Control"] == "no-store"
    return response.json()


def test_it_is_installed():
    assert "flows.middleware.DatabaseUnavailableMiddleware" in settings.MIDDLEWARE


@pytest.mark.django_db
def test_the_api_answers_503_json_when_the_database_refuses(client, monkeypatch):
    fail_with(monkeypatch, "flows.api.auth.api_key_authenticate", OperationalError(REFUSED))

    response = client.post(TRIGGERS, data={"inputs": {"IndividualId": "003A"}}, content_type="application/json",
                           headers=HEADERS)

    body = assert_json_503(response)
    assert "Idempotency-Key" in body["error"]
    assert REFUSED not in body["error"]  # the server's address stays in the log


@pytest.mark.django_db
def test_a_lost_connection_on_a_webhook_is_503_json(client, monkeypatch):
    fail_with(monkeypatch, "flows.webhooks.views.shopify_webhook_for_slug",
              InterfaceError("connection already closed"))

    response = client.post("/hooks/shopify/acme-store", data=b"{}", content_type="application/json")

    assert assert_json_503(response) == {"error": "The database is unavailable for a moment. Try again shortly."}


def test_pages_get_a_plain_503():
    middleware = DatabaseUnavailableMiddleware(lambda request: None)
    request = RequestFactory().get("/console/")

    response = middleware.process_exception(request, OperationalError("the database system is shutting down"))

    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/plain")
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert b"database is unavailable" in response.content


@pytest.mark.parametrize("error", [ValueError("a bug"), IntegrityError("duplicate key"),
                                   ProgrammingError("relation does not exist")])
def test_other_errors_stay_500(error):
    """Only outages become 503: a bug, a constraint or a missing migration must not hide behind 'try again'."""
    middleware = DatabaseUnavailableMiddleware(lambda request: None)
    assert middleware.process_exception(RequestFactory().get("/api/v1/triggers/1"), error) is None


@pytest.mark.django_db
def test_a_bug_in_the_api_is_still_a_500(monkeypatch):
    fail_with(monkeypatch, "flows.api.auth.api_key_authenticate", ValueError("a bug"))

    response = Client(raise_request_exception=False).post(
        TRIGGERS, data={"inputs": {}}, content_type="application/json", headers=HEADERS)

    assert response.status_code == 500
