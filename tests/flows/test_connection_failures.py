"""Test connection on a mistyped My Domain, or an address nothing answers at: a sentence and what to fix, never a
Python exception's repr; the technical detail stays in the Exchange. Real sockets, no mock."""

from __future__ import annotations

import socket

import pytest
from django.urls import reverse

from flows.connection import org_test_connection
from flows.models import Exchange, Org
from tests.conftest import make_org


@pytest.fixture
def typo_org(db, settings) -> Org:
    settings.FLOWGATE_EXTRA_SALESFORCE_HOSTS = ["acmee.invalid"]  # .invalid never resolves (RFC 6761)
    return make_org(slug="typo", url="http://acmee.invalid")


def test_a_my_domain_that_does_not_resolve_says_check_its_spelling(typo_org):
    report = org_test_connection(org=typo_org)

    assert not report.ok
    assert report.error.code == "DNS_ERROR"
    assert report.error.message == "The host acmee.invalid does not resolve (no such name in DNS)."
    assert "spelling of the My Domain URL" in report.error.hint
    assert "NameResolutionError" in Exchange.objects.get(kind=Exchange.Kind.TOKEN).network_error


def test_the_admin_page_shows_no_exception_repr(typo_org, client):
    from tests.conftest import admin_user

    client.force_login(admin_user())
    html = client.post(reverse("admin:flows_org_test_connection", args=[typo_org.pk])).content.decode()

    assert "DNS_ERROR: The host acmee.invalid does not resolve" in html
    assert "What to fix:</strong> The org&#x27;s host name does not resolve" in html
    for repr_fragment in ("HTTPConnectionPool", "NameResolutionError", "Max retries exceeded", "Errno"):
        assert repr_fragment not in html


def test_an_address_nothing_answers_at_is_refused_with_a_hint(db):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    report = org_test_connection(org=make_org(slug="closed", url=f"http://127.0.0.1:{port}"))

    assert (report.error.code, report.error.message) == ("CONNECTION_REFUSED", "127.0.0.1 refused the connection.")
    assert "My Domain URL" in report.error.hint
