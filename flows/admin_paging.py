"""Admin changelists over tables of millions of rows (triggers, exchanges) without reading them whole.

Four things in Django's changelist read a whole table on every view; here is what replaces each:
- the paginator's COUNT(*): CappedCountPaginator;
- a list_filter on a plain column, whose choices are SELECT DISTINCT column: ResponseStatusClassFilter;
- search_fields, whose lookups no index serves (icontains; even "=id" compares UPPER(id::text)):
  IndexedSearchMixin;
- date_hierarchy, which runs SELECT DISTINCT date_trunc(...) over the table: drop it on such models (the
  created_at list filter stays, and its ranges are served by the created_at index).
"""

from __future__ import annotations

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.utils.functional import cached_property


class AtLeast(int):
    """A count that stopped at its cap: it computes and compares as the cap, and reads "10,000+" wherever the
    admin prints it (the result count, "Select all 10,000+ triggers")."""

    def __str__(self) -> str:
        return f"{int(self):,}+"

    __repr__ = __str__


class CappedCountPaginator(Paginator):
    """Counts at most `count_cap` + 1 rows: exact up to the cap, "10,000+" beyond it.

    Django's changelist counts its filtered queryset for the paginator on every view, even with
    show_full_result_count = False (that only skips the second, unfiltered count), and an exact count on
    PostgreSQL reads every matching row: hundreds of milliseconds at a million triggers, seconds at millions of
    exchanges, growing with the table. A capped count costs the same at any size and stays honest (an estimate
    from pg_class.reltuples would be cheaper still, but exists only for the unfiltered table and is a guess
    shown as a fact). The pages past the cap are not offered: nobody pages through 10,000 rows; they filter.
    """

    count_cap = 10_000

    @cached_property
    def count(self) -> int:
        if not isinstance(self.object_list, QuerySet):
            return super().count
        # SELECT COUNT(*) FROM (SELECT ... LIMIT cap + 1): without the ordering, PostgreSQL stops after the
        # first cap + 1 rows of whichever index or scan is cheapest.
        found = self.object_list.order_by()[: self.count_cap + 1].count()
        return found if found <= self.count_cap else AtLeast(self.count_cap)


class ResponseStatusClassFilter(admin.SimpleListFilter):
    """Exchanges by HTTP status class. Listing "response_status" itself in list_filter makes Django run
    SELECT DISTINCT response_status over every exchange on every changelist view (a full scan: about a second
    at 3,000,000 exchanges); the classes are known in advance, and each is a range the list query filters."""

    title = "response status"
    parameter_name = "response_status_class"

    def lookups(self, request, model_admin):
        return [("2xx", "2xx success"), ("3xx", "3xx redirect"), ("4xx", "4xx client error"),
                ("5xx", "5xx server error"), ("none", "no response (network error)")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "none":
            return queryset.filter(response_status__isnull=True)
        if value in {"2xx", "3xx", "4xx", "5xx"}:
            low = int(value[0]) * 100
            return queryset.filter(response_status__gte=low, response_status__lt=low + 100)
        return queryset


class IndexedSearchMixin:
    """Admin search answered from indexes: a whole number matches the integer columns in `search_id_fields`
    (the trigger id; an exchange's trigger), any term matches the text columns in `search_exact_fields` exactly
    (case-sensitive, as an idempotency key is). Nothing else is searched: a substring search (icontains) or
    Django's "=id" (UPPER(id::text) = ...) reads every row, seconds at millions of rows, for each search."""

    search_id_fields: tuple[str, ...] = ()
    search_exact_fields: tuple[str, ...] = ()

    def get_search_fields(self, request) -> list[str]:
        # Shown as long as there is something to search; get_search_results below does the searching.
        return [*self.search_id_fields, *self.search_exact_fields]

    def get_search_results(self, request, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(pk__in=[])  # matches nothing: a term that fits no field finds nothing, without a scan
        if term.isascii() and term.isdigit() and len(term) < 19:  # fits a bigint
            for name in self.search_id_fields:
                match |= Q(**{name: int(term)})
        for name in self.search_exact_fields:
            match |= Q(**{name: term})
        return queryset.filter(match), False
