"""The admin's changelists count at most a cap of rows, and say "N+" beyond it."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from flows.admin_paging import AtLeast, CappedCountPaginator
from flows.models import Exchange, Trigger


class CapOfFive(CappedCountPaginator):
    count_cap = 5


def make_triggers(flow, n: int, status: str = Trigger.Status.SUCCEEDED) -> None:
    Trigger.objects.bulk_create(Trigger(flow=flow, inputs={"IndividualId": f"003{i}"}, status=status,
                                        source=Trigger.Source.API) for i in range(n))


def count_queries(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]


def test_a_count_below_the_cap_is_exact(flow):
    make_triggers(flow, 4)

    count = CapOfFive(Trigger.objects.order_by("-id"), 2).count

    assert count == 4 and type(count) is int
    assert str(count) == "4"


def test_a_count_over_the_cap_stops_there_and_says_so(flow):
    make_triggers(flow, 8)
    paginator = CapOfFive(Trigger.objects.order_by("-id"), 2)

    with CaptureQueriesContext(connection) as queries:
        count = paginator.count

    assert isinstance(count, AtLeast) and count == 5 and str(count) == "5+"
    [sql] = count_queries(queries)
    assert "LIMIT 6" in sql and "ORDER BY" not in sql  # bounded, and free to use any index
    assert paginator.num_pages == 3
    assert [t.pk for t in paginator.page(3).object_list] == list(
        Trigger.objects.order_by("-id").values_list("pk", flat=True)[4:5])


def test_the_default_cap_reads_with_a_thousands_separator():
    assert str(AtLeast(CappedCountPaginator.count_cap)) == "10,000+"


@pytest.fixture
def capped_trigger_admin(monkeypatch):
    """TriggerAdmin wired as flows/admin.py is meant to be (paginator = CappedCountPaginator), cap 5."""
    monkeypatch.setattr(admin.site._registry[Trigger], "paginator", CapOfFive)


def test_the_trigger_changelist_shows_the_capped_count_without_counting_everything(
        client, alice, flow, capped_trigger_admin):
    make_triggers(flow, 12)
    client.force_login(alice)

    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("admin:flows_trigger_changelist"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "5+ triggers" in page
    counts = [sql for sql in count_queries(queries) if '"flows_trigger"' in sql]
    assert counts and all("LIMIT 6" in sql for sql in counts), counts


def test_a_filtered_changelist_under_the_cap_counts_exactly(client, alice, flow, capped_trigger_admin):
    make_triggers(flow, 12)
    make_triggers(flow, 3, status=Trigger.Status.FAILED)
    client.force_login(alice)

    response = client.get(reverse("admin:flows_trigger_changelist"), {"status__exact": "failed"})

    assert response.status_code == 200
    assert response.context["cl"].result_count == 3
    assert "3 triggers" in response.content.decode()


@pytest.fixture
def exchange_admin_wired(monkeypatch):
    """ExchangeAdmin with the status classes in place of "response_status" in list_filter, as meant."""
    from flows.admin_paging import ResponseStatusClassFilter

    exchange_admin = admin.site._registry[Exchange]
    monkeypatch.setattr(exchange_admin, "list_filter", [
        ResponseStatusClassFilter if f == "response_status" else f for f in exchange_admin.list_filter])


def test_exchanges_filter_by_status_class_without_reading_every_status(client, alice, org, exchange_admin_wired):
    statuses = {200: None, 201: None, 401: None, 503: None, None: None}
    for status in statuses:
        statuses[status] = Exchange.objects.create(
            org=org, kind=Exchange.Kind.INVOKE, method="POST", url="https://acme.my.salesforce.com/x",
            response_status=status, network_error="" if status else "Connection refused").pk
    client.force_login(alice)
    url = reverse("admin:flows_exchange_changelist")

    with CaptureQueriesContext(connection) as queries:
        shown = {value: {e.pk for e in client.get(url, {"response_status_class": value}).context["cl"].result_list}
                 for value in ("2xx", "4xx", "5xx", "none")}

    assert shown == {"2xx": {statuses[200], statuses[201]}, "4xx": {statuses[401]}, "5xx": {statuses[503]},
                     "none": {statuses[None]}}
    every_status = 'SELECT DISTINCT "flows_exchange"."response_status"'
    assert not [q["sql"] for q in queries.captured_queries if q["sql"].startswith(every_status)]
    assert "5xx server error" in client.get(url).content.decode()


def wire_search(monkeypatch, model, **fields) -> None:
    """The registered admin with IndexedSearchMixin's search, as flows/admin.py is meant to be wired."""
    from types import MethodType

    from flows.admin_paging import IndexedSearchMixin

    model_admin = admin.site._registry[model]
    for name, value in {"search_id_fields": (), "search_exact_fields": (), **fields}.items():
        monkeypatch.setattr(model_admin, name, value, raising=False)
    for method in ("get_search_fields", "get_search_results"):
        monkeypatch.setattr(model_admin, method, MethodType(getattr(IndexedSearchMixin, method), model_admin))


def searched(client, model, term: str) -> tuple[list[int], list[str]]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse(f"admin:flows_{model._meta.model_name}_changelist"), {"q": term})
    assert response.status_code == 200
    return [row.pk for row in response.context["cl"].result_list], [q["sql"] for q in queries.captured_queries]


def test_trigger_search_by_id_or_idempotency_key_uses_their_indexes(client, alice, flow, monkeypatch):
    wire_search(monkeypatch, Trigger, search_id_fields=("pk",), search_exact_fields=("idempotency_key",))
    make_triggers(flow, 3)
    keyed = Trigger.objects.create(flow=flow, inputs={}, status=Trigger.Status.FAILED, source=Trigger.Source.API,
                                   idempotency_key="order-1001")
    numbered = Trigger.objects.create(flow=flow, inputs={}, status=Trigger.Status.FAILED,
                                      source=Trigger.Source.API, idempotency_key=str(keyed.pk + 1000))
    client.force_login(alice)

    found, sql = searched(client, Trigger, f" {keyed.pk} ")
    assert found == [keyed.pk]
    listing = [s for s in sql if s.startswith('SELECT "flows_trigger"."id"')][-1]
    assert f'"flows_trigger"."id" = {keyed.pk}' in listing and "UPPER" not in listing and "::" not in listing

    assert searched(client, Trigger, "order-1001")[0] == [keyed.pk]
    assert searched(client, Trigger, "ORDER-1001")[0] == []  # exact: an idempotency key is case-sensitive
    assert searched(client, Trigger, "order-10")[0] == []  # no substring search
    assert searched(client, Trigger, str(keyed.pk + 1000))[0] == [numbered.pk]  # a numeric key is found too


def test_exchange_search_by_trigger_id_and_nothing_else(client, alice, org, flow, monkeypatch):
    wire_search(monkeypatch, Exchange, search_id_fields=("trigger_id",))
    make_triggers(flow, 2)
    first, second = Trigger.objects.order_by("id")
    mine = [Exchange.objects.create(org=org, trigger=first, kind=Exchange.Kind.INVOKE, method="POST",
                                    url="https://acme.my.salesforce.com/x", response_status=200).pk for _ in range(2)]
    Exchange.objects.create(org=org, trigger=second, kind=Exchange.Kind.INVOKE, method="POST",
                            url="https://acme.my.salesforce.com/x", response_status=200)
    client.force_login(alice)

    assert sorted(searched(client, Exchange, str(first.pk))[0]) == sorted(mine)
    found, sql = searched(client, Exchange, "salesforce")
    assert found == []
    assert not [s for s in sql if '"flows_exchange"' in s and "LIKE" in s]  # no query scans for the word
