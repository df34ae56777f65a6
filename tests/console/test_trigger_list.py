"""The console's trigger list: failed first, filters, search by input value or id, keyset pages without COUNT."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from flows.models import Trigger
from tests.conftest import make_flow, make_org

from .conftest import make_trigger, rows

URL = reverse("console:triggers")
S = Trigger.Status


@pytest.fixture
def world(db):
    """Two orgs, three flows, triggers of every kind; names -> rows."""
    acme, globex = make_org(), make_org(slug="globex", url="https://globex.my.salesforce.com")
    welcome, other, globex_flow = make_flow(acme), make_flow(acme, "Other_Flow"), make_flow(globex)
    t = {
        "failed_old": make_trigger(welcome, inputs={"IndividualId": "ID-OLD", "EmailAddress": "old@example.com"}),
        "succeeded": make_trigger(welcome, status=S.SUCCEEDED, inputs={"IndividualId": "ID-OK"}),
        "failed_other": make_trigger(other, error_code="NOT_FOUND", source=Trigger.Source.CONSOLE,
                                     inputs={"IndividualId": "ID-OTHER", "TelephoneNumber": "+4915112345678"}),
        "retrying": make_trigger(welcome, status=S.RETRYING, error_code="HTTP_503", inputs={"IndividualId": "ID-R"}),
        "failed_globex": make_trigger(globex_flow, source=Trigger.Source.WEBHOOK,
                                      inputs={"IndividualId": "ID-GLOBEX", "EmailAddress": "ada@example.com"}),
        "failed_new": make_trigger(welcome, inputs={"IndividualId": "003Ho00002AlRM8IAN",
                                                    "EmailAddress": "grace@example.com"}),
    }
    day = timezone.make_aware(dt.datetime(2026, 3, 10, 12, 0))
    for offset, name in enumerate(t):  # one trigger a day, oldest first: 2026-03-10 .. 2026-03-15
        Trigger.objects.filter(pk=t[name].pk).update(created_at=day + dt.timedelta(days=offset))
    t.update(acme=acme, globex=globex, welcome=welcome, other=other, globex_flow=globex_flow)
    return t


def ids(world, *names) -> list[int]:
    return sorted((world[n].pk for n in names), reverse=True)


def test_the_list_opens_on_failed_triggers_newest_first(as_bob, world):
    response = as_bob.get(URL)

    assert response.status_code == 200
    assert rows(response) == ids(world, "failed_old", "failed_other", "failed_globex", "failed_new")
    html = response.content.decode()
    assert html.index(f">#{world['failed_new'].pk}<") < html.index(f">#{world['failed_old'].pk}<")
    assert f">#{world['succeeded'].pk}<" not in html


def test_an_empty_status_shows_every_trigger(as_bob, world):
    response = as_bob.get(URL, {"status": ""})

    assert rows(response) == ids(world, "failed_old", "succeeded", "failed_other", "retrying", "failed_globex",
                                 "failed_new")


@pytest.mark.parametrize("params, expected", [
    ({"status": "succeeded"}, ["succeeded"]),
    ({"status": "retrying"}, ["retrying"]),
    ({"status": "failed", "org": "globex"}, ["failed_globex"]),
    ({"status": "", "org": "acme"}, ["failed_old", "succeeded", "failed_other", "retrying", "failed_new"]),
    ({"status": "", "flow": "other"}, ["failed_other"]),
    ({"status": "", "source": "webhook"}, ["failed_globex"]),
    ({"status": "", "source": "console"}, ["failed_other"]),
    ({"status": "", "error_code": "HTTP_503"}, ["retrying"]),
    ({"status": "failed", "error_code": "NOT_FOUND"}, ["failed_other"]),
    ({"status": "", "date_from": "2026-03-13"}, ["retrying", "failed_globex", "failed_new"]),
    ({"status": "", "date_to": "2026-03-11"}, ["failed_old", "succeeded"]),
    ({"status": "", "date_from": "2026-03-11", "date_to": "2026-03-12"}, ["succeeded", "failed_other"]),
    ({"status": "failed", "date_from": "2026-03-11", "date_to": "2026-03-14"}, ["failed_other", "failed_globex"]),
])
def test_each_filter_narrows(as_bob, world, params, expected):
    if params.get("flow") == "other":
        params = {**params, "flow": world["other"].pk}

    response = as_bob.get(URL, params)

    assert response.status_code == 200
    assert rows(response) == ids(world, *expected)


def test_an_invalid_filter_shows_its_error_and_no_rows(as_bob, world):
    response = as_bob.get(URL, {"status": "", "org": "nope"})

    assert response.status_code == 200
    assert rows(response) == []
    assert "org:" in response.content.decode()


@pytest.mark.parametrize("q, expected", [
    ("grace@example.com", ["failed_new"]),
    ("GRACE@EXAMPLE.COM", ["failed_new"]),  # an email typed in upper case
    ("+4915112345678", ["failed_other"]),  # a phone number
    ("ID-GLOBEX", ["failed_globex"]),  # an IndividualId
    ("ada@example.com", ["failed_globex"]),  # an input value, not a substring of another
    ("nobody@example.com", []),
])
def test_search_by_an_input_value(as_bob, world, q, expected):
    response = as_bob.get(URL, {"q": q, "status": ""})

    assert rows(response) == ids(world, *expected)


def test_search_by_input_value_keeps_the_other_filters(as_bob, world):
    assert rows(as_bob.get(URL, {"q": "ID-OK", "status": "failed"})) == []
    assert rows(as_bob.get(URL, {"q": "ID-OK", "status": "succeeded"})) == ids(world, "succeeded")


def test_search_by_trigger_id(as_bob, world):
    response = as_bob.get(URL, {"q": str(world["retrying"].pk), "status": ""})

    assert rows(response) == ids(world, "retrying")


def test_a_search_for_a_non_ascii_digit_is_no_server_error(bob, world):
    client = Client(raise_request_exception=False)
    client.force_login(bob)

    response = client.get(URL, {"q": "²", "status": ""})

    assert response.status_code == 200
    assert rows(response) == []


def test_a_non_ascii_digit_cursor_is_no_server_error(bob, world):
    client = Client(raise_request_exception=False)
    client.force_login(bob)

    assert client.get(URL, {"status": "", "before": "²"}).status_code == 200


# --- keyset pages -----------------------------------------------------------------------------------


@pytest.fixture
def many(flow) -> list[int]:
    """120 failed triggers; their ids, newest first."""
    Trigger.objects.bulk_create(
        Trigger(flow=flow, inputs={"IndividualId": f"ID-{n}"}, status=S.FAILED, source=Trigger.Source.API,
                error_code="UNKNOWN_EXCEPTION") for n in range(120)
    )
    return list(Trigger.objects.order_by("-id").values_list("pk", flat=True))


def older_link(response) -> str | None:
    match = re.search(r'<a href="\?([^"]*)">Older', response.content.decode())
    return match.group(1).replace("&amp;", "&") if match else None


def test_keyset_pages_follow_the_older_link_without_overlap(as_bob, many):
    first = as_bob.get(URL)
    assert rows(first) == many[:50]

    link = older_link(first)
    assert link == f"status=failed&before={many[49]}"
    second = as_bob.get(f"{URL}?{link}")
    assert rows(second) == many[50:100]
    assert "Newest" in second.content.decode()

    third = as_bob.get(f"{URL}?{older_link(second)}")
    assert rows(third) == many[100:]
    assert older_link(third) is None


def test_the_older_link_keeps_the_filter(as_bob, many, flow):
    response = as_bob.get(URL, {"status": "failed", "flow": flow.pk, "q": ""})

    assert older_link(response) == f"status=failed&flow={flow.pk}&before={many[49]}"


def test_the_list_runs_no_count_query(as_bob, many):
    as_bob.get(URL)  # warm the session and content types

    with CaptureQueriesContext(connection) as queries:
        response = as_bob.get(URL, {"status": ""})
        response2 = as_bob.get(f"{URL}?{older_link(response)}")

    assert response.status_code == response2.status_code == 200
    counting = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counting == []
    assert len(queries.captured_queries) <= 20  # a handful per page, not one per row
