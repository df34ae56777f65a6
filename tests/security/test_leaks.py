"""Nothing leaks: after a full scenario with DEBUG off (the API, Shopify deliveries under both secrets, a
per-input failure, a token error, a retried 503, an expired token renewed, three forced 500 pages, every admin
and console page opened by alice and bob), no secret appears in plain text in any database table, any log line
(every logger at DEBUG, the worker's included, SQL statements with their parameters too), any page or API
answer fetched, any broker message or any cache entry.

The secrets: the External Client App's consumer key and secret, every access token the emulator issued, every
API key, both webhook signing secrets, the Fernet keys and Django's SECRET_KEY; each also looked for
percent-encoded (a token's "!" becomes %21 in a form body or a URL).

Runs with the real worker over the Redis broker and the emulator over loopback (tests/conftest.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import redis
from celery.signals import before_task_publish
from django.conf import settings as django_settings
from django.contrib import admin
from django.db import connection
from django.db.backends.signals import connection_created
from django.test import Client
from django.urls import reverse

from flows.api import views as api_views
from flows.api.services import api_key_create
from flows.console import views as console_views
from flows.models import Trigger
from flows.salesforce import client as salesforce_client
from flows.salesforce import tokens
from flows.webhooks.models import ShopifyTopic, ShopifyWebhook
from tests.conftest import admin_user, make_flow, support_user, wait_final
from tests.webhooks.conftest import DEMO_MAPPING, SHOP, fixture_body, shopify_headers

from .conftest import logged_in

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WEBHOOK_SECRET = "shpss_leak-test-current-secret-0123456789"
PREVIOUS_WEBHOOK_SECRET = "shpss_leak-test-previous-secret-9876543210"
API = "/api/v1/flows/emu/On_Demand_Flow/triggers"
MAX_OBJECTS_PER_MODEL = 30  # change pages opened per admin model


# --- what is collected ------------------------------------------------------------------------------------


@pytest.fixture
def every_log_line(caplog) -> Iterator[pytest.LogCaptureFixture]:
    """caplog at DEBUG on every logger, including those that do not propagate to the root (Celery's), with every
    SQL statement and its parameters logged too (django.db.backends), in every thread's connection."""

    def log_sql(sender, connection, **kwargs) -> None:
        connection.force_debug_cursor = True

    connection_created.connect(log_sql)
    connection.force_debug_cursor = True
    caplog.set_level(logging.DEBUG)
    loggers = [logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    for logger in loggers:
        caplog.set_level(logging.DEBUG, logger=logger.name)
    detached = [logger for logger in loggers if not logger.propagate]
    for logger in detached:
        logger.addHandler(caplog.handler)
    yield caplog
    for logger in detached:
        logger.removeHandler(caplog.handler)
    connection_created.disconnect(log_sql)
    connection.force_debug_cursor = False


@pytest.fixture
def published() -> Iterator[list[str]]:
    """Every task message as it leaves for the broker: body, headers and properties."""
    messages: list[str] = []

    def record(body=None, headers=None, properties=None, **kwargs) -> None:
        messages.append(repr((body, headers, properties)))

    before_task_publish.connect(record, weak=False)
    yield messages
    before_task_publish.disconnect(record)


class Pages:
    """Every answer fetched: status, headers and body, by URL."""

    def __init__(self) -> None:
        self.fetched: list[tuple[str, str]] = []

    def keep(self, url: str, response) -> None:
        headers = "\n".join(f"{name}: {value}" for name, value in response.items())
        body = response.content.decode("utf-8", "replace")
        self.fetched.append((url, f"{response.status_code}\n{headers}\n\n{body}"))

    def get(self, client: Client, url: str, **kwargs):
        response = client.get(url, **kwargs)
        self.keep(url, response)
        return response

    def post(self, client: Client, url: str, data=None, **kwargs):
        response = client.post(url, data, **kwargs)
        self.keep(url, response)
        return response


def database_rows() -> dict[str, str]:
    """Every table, every row, as PostgreSQL writes a row as text."""
    rows = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT CAST(t AS text) FROM "{table}" t')
            rows[table] = "\n".join(row[0] for row in cursor.fetchall())
    return rows


def redis_contents(url: str) -> dict[str, str]:
    """Every key of a Redis database and its value, whatever its type."""
    client = redis.Redis.from_url(url)
    contents = {}
    for key in client.scan_iter():
        kind = client.type(key).decode()
        if kind == "string":
            values = [client.get(key) or b""]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "hash":
            values = [b"%s=%s" % pair for pair in client.hgetall(key).items()]
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
        else:
            values = [repr(client.dump(key)).encode()]
        contents[f"{url} {key.decode('utf-8', 'replace')}"] = b"\n".join(values).decode("utf-8", "replace")
    return contents


def forms_of(secret: str) -> set[str]:
    return {secret, quote(secret, safe="")}


# --- the scenario -----------------------------------------------------------------------------------------


def test_no_secret_appears_anywhere(worker, emulator, emu_flow, every_log_line, published, capfd, monkeypatch,
                                    settings):
    assert settings.DEBUG is False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    sf = emulator.emulator
    pages = Pages()
    app = emu_flow.org.client_apps.get()
    other_flow = make_flow(emu_flow.org, "Other_Flow")
    _, api_key = api_key_create(name="ERP sync", flows=[emu_flow])
    _, other_key = api_key_create(name="Other system", flows=[other_flow])
    webhook = ShopifyWebhook.objects.create(name="Acme store", slug="acme-store", shop_domains=SHOP,
                                            secret=WEBHOOK_SECRET, rotation_secret=PREVIOUS_WEBHOOK_SECRET)
    ShopifyTopic.objects.create(webhook=webhook, topic="orders/create", flow=emu_flow, mapping=DEMO_MAPPING)
    api = Client(raise_request_exception=False, headers={"Authorization": f"Bearer {api_key}"})
    alice = logged_in(admin_user(), raise_request_exception=False)
    bob = logged_in(support_user(), raise_request_exception=False)
    fired: list[int] = []

    def fire(individual_id: str) -> Trigger:
        response = pages.post(api, API, {"inputs": {"IndividualId": individual_id, "EmailAddress": "ada@example.com"}},
                              content_type="application/json")
        assert response.status_code == 202, response.content
        fired.append(response.json()["id"])
        return wait_final(Trigger.objects.get(pk=response.json()["id"]))

    # Through the API: a success, a per-input failure, a 503 retried, an expired token renewed, a token error.
    assert fire("003OK").status == Trigger.Status.SUCCEEDED
    stored = {**redis_contents(django_settings.CACHES["default"]["LOCATION"])}  # the token, cached
    assert fire("FAIL-0001").error_code == "UNKNOWN_EXCEPTION"
    sf.configure(fail_next=1)
    assert fire("003RETRY").attempts == 2
    sf.configure(expire_tokens=True)
    renewed = fire("003EXPIRED")
    assert renewed.status == Trigger.Status.SUCCEEDED
    assert list(renewed.exchanges.order_by("id").values_list("response_status", flat=True)) == [401, 200]
    sf.configure(token_error="invalid_client")
    tokens.forget_all(app)
    assert fire("003TOKEN").error_code == "invalid_client"
    sf.configure(token_error=None)
    tokens.forget_all(app)  # the failure is remembered for a few seconds: start afresh
    batch = pages.post(api, f"{API}/batch", {"items": [{"inputs": {"IndividualId": "003B1"}},
                                                       {"inputs": {"IndividualId": "003B2"}}]},
                       content_type="application/json")
    fired.extend(result["id"] for result in batch.json()["results"])
    # A key for another flow, and no key at all: refused, and the refusals leak nothing either.
    assert pages.post(Client(), API, {"inputs": {}}, content_type="application/json",
                      headers={"Authorization": f"Bearer {other_key}"}).status_code == 404
    assert pages.post(Client(), API, {"inputs": {}}, content_type="application/json").status_code == 401

    # Shopify: a delivery signed with the current secret, one with the previous one, one unsigned.
    body = fixture_body()
    for secret, delivery_id in ((WEBHOOK_SECRET, "leak-1"), (PREVIOUS_WEBHOOK_SECRET, "leak-2")):
        answer = pages.post(Client(), "/hooks/shopify/acme-store", body, content_type="application/json",
                            headers=shopify_headers(body, webhook_id=delivery_id, secret=secret)).json()
        assert answer["outcome"] == "triggered"
        fired.append(answer["trigger"])
    unsigned = {**shopify_headers(body, webhook_id="leak-3")}
    del unsigned["X-Shopify-Hmac-Sha256"]
    assert pages.post(Client(), "/hooks/shopify/acme-store", body, content_type="application/json",
                      headers=unsigned).status_code == 401

    # The admin's tools, for real against the emulator: a token request, versions, limits, the flows.
    org = emu_flow.org
    assert pages.post(alice, reverse("admin:flows_org_test_connection", args=[org.pk])).status_code == 200
    assert pages.get(alice, reverse("admin:flows_org_import", args=[org.pk])).status_code == 200
    assert pages.get(alice, reverse("admin:flows_org_import_preview", args=[org.pk, "On_Demand_Flow"])
                     ).status_code == 200
    # Support re-sends a failed trigger from the console.
    resent = pages.post(bob, reverse("console:trigger_resend", args=[fired[1]]))
    assert resent.status_code == 302
    fired.append(Trigger.objects.filter(resend_of_id=fired[1]).get().pk)
    for pk in fired:
        wait_final(Trigger.objects.get(pk=pk))

    # Three 500 pages, DEBUG off: after the key was read, while a consumer secret was about to be sent, and in
    # the console.
    with monkeypatch.context() as patch:
        patch.setattr(api_views.services, "api_trigger_create", explode)
        crashed = pages.post(api, API, {"inputs": {"IndividualId": "003CRASH"}}, content_type="application/json")
        assert crashed.status_code == 500
    with monkeypatch.context() as patch:
        patch.setattr(salesforce_client, "http_session", lambda: ExplodingSession())
        assert pages.post(alice, reverse("admin:flows_org_test_connection", args=[org.pk])).status_code == 500
    with monkeypatch.context() as patch:
        patch.setattr(console_views, "trigger_page", explode)
        assert pages.get(bob, reverse("console:triggers")).status_code == 500
    assert fire("003LAST").status == Trigger.Status.SUCCEEDED  # a token in the cache again for the last look

    # Every page alice and bob can reach, and the API's answers.
    for who in (alice, bob):
        visit_every_page(pages, who)
    for pk in fired:
        pages.get(api, reverse("api:trigger", args=[pk]))

    assert {Trigger.objects.get(pk=pk).status for pk in fired} == {Trigger.Status.SUCCEEDED, Trigger.Status.FAILED}
    secrets = {
        "consumer key": sf.consumer_key, "consumer secret": sf.consumer_secret, "API key": api_key,
        "other API key": other_key, "webhook secret": WEBHOOK_SECRET, "previous webhook secret":
            PREVIOUS_WEBHOOK_SECRET, "SECRET_KEY": django_settings.SECRET_KEY,
        **{f"access token {n}": token for n, token in enumerate(sf.issued_tokens(), start=1)},
        **{f"encryption key {n}": key for n, key in enumerate(django_settings.FLOWGATE_ENCRYPTION_KEYS, start=1)},
    }
    assert sum(name.startswith("access token") for name in secrets) >= 4  # first, renewed, webhooks, connection
    out, err = capfd.readouterr()
    log_records = [f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in every_log_line.records]
    assert any("Internal Server Error" in line for line in log_records)  # the 500s were logged, tracebacks too
    assert any("INSERT INTO \"flows_exchange\"" in line for line in log_records)  # and SQL, the worker's too
    places = {
        **{f"table {table}": text for table, text in database_rows().items()},
        "log records": "\n".join(log_records) + every_log_line.text,
        "process output": out + err,
        **{f"page {url}": text for url, text in pages.fetched},
        "published task messages": "\n".join(published),
        **{f"earlier {key}": text for key, text in stored.items()},
        **redis_contents(django_settings.CELERY_BROKER_URL),
        **redis_contents(django_settings.CACHES["default"]["LOCATION"]),
    }
    assert any(":token:" in key for key in places) and any("_kombu" in key for key in places)
    assert len(pages.fetched) > 100 and published and any(key.startswith("table flows_exchange") for key in places)

    leaks = [f"{name} in {place}" for name, secret in secrets.items() for form in forms_of(secret)
             for place, text in places.items() if form in text]
    assert leaks == []
    assert b"Server Error (500)" in crashed.content  # the plain page, not the debug page


def explode(*args, **kwargs):
    raise RuntimeError("forced failure for the leak test")


class ExplodingSession:
    """Fails the way a bug in the HTTP layer would, with the form body (client_secret included) in hand."""

    def send(self, request, **kwargs):
        raise RuntimeError(f"forced failure sending {request.method} to {request.url}")


def visit_every_page(pages: Pages, client: Client) -> None:
    for model in admin.site._registry:
        opts = model._meta
        pages.get(client, reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        for pk in model._default_manager.values_list("pk", flat=True)[:MAX_OBJECTS_PER_MODEL]:
            pages.get(client, reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk]))
    pages.get(client, reverse("admin:index"))
    pages.get(client, reverse("console:triggers") + "?status=")
    pages.get(client, reverse("console:dashboard"))
    pages.get(client, reverse("console:jobs"))
    pages.get(client, reverse("console:deliveries"))
    pages.get(client, reverse("console:triggers_resend_all") + "?status=failed")
    for pk in Trigger.objects.values_list("pk", flat=True):
        pages.get(client, reverse("console:trigger", args=[pk]))
        pages.get(client, reverse("console:trigger_live", args=[pk]))
    from flows.webhooks.models import WebhookDelivery

    for pk in WebhookDelivery.objects.values_list("pk", flat=True):
        pages.get(client, reverse("console:delivery", args=[pk]))
    for flow_pk in Trigger.objects.values_list("flow_id", flat=True).distinct():
        pages.get(client, reverse("console:flow_fire", args=[flow_pk]))
        pages.get(client, reverse("admin:flows_flow_fire", args=[flow_pk]))
