"""Prepared statements for the hot path, plans made for their values on the console and admin pages."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection
from django.http import HttpResponse
from django.test import RequestFactory

from flows.plans import CustomPlansMiddleware, custom_plans


def plan_cache_mode() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        return cursor.fetchone()[0]


@pytest.fixture(autouse=True)
def _postgresql(db):
    if connection.vendor != "postgresql":
        pytest.skip("plan_cache_mode is PostgreSQL's")


def test_prepared_statements_are_on_for_postgresql():
    assert connection.settings_dict["OPTIONS"]["server_side_binding"] is True
    assert connection.settings_dict["OPTIONS"]["prepare_threshold"] == 5


def test_custom_plans_inside_and_the_default_again_after():
    assert plan_cache_mode() == "auto"
    with custom_plans():
        assert plan_cache_mode() == "force_custom_plan"
    assert plan_cache_mode() == "auto"


@pytest.mark.parametrize("path, mode", [
    ("/console/", "force_custom_plan"), ("/admin/flows/trigger/", "force_custom_plan"),
    ("/api/v1/flows/acme/On_Demand_Flow/triggers", "auto"), ("/hooks/shopify/demo", "auto"),
])
def test_pages_people_use_plan_for_their_values_and_the_api_keeps_prepared_plans(path, mode):
    seen = []

    def view(request) -> HttpResponse:
        seen.append(plan_cache_mode())
        return HttpResponse("ok")

    CustomPlansMiddleware(view)(RequestFactory().get(path))

    assert seen == [mode]
    assert plan_cache_mode() == "auto"  # nothing left behind on the connection


def test_a_page_while_the_database_is_unreachable_answers_503_not_500(client, alice, monkeypatch):
    client.force_login(alice)

    def unreachable(*args, **kwargs):
        raise OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")

    with monkeypatch.context() as patch:  # undone before the test database's own teardown needs a cursor
        patch.setattr(connection, "cursor", unreachable)
        response = client.get("/console/")

    assert response.status_code == 503
    assert response["Retry-After"]
