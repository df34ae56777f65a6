"""Benchmark item 5 of issue 5: do the console and the admin stay fast at 1,000,000 triggers?

    .venv/bin/python -m bench.scale [--quick] [--reload] [--requests N] [--explain]

Loads 1,000,000 triggers and 3,000,000 exchanges (--quick: 100,000 and 300,000) into a PostgreSQL database of
its own, generated in SQL (INSERT ... SELECT generate_series, secondary indexes built after the load, then
VACUUM ANALYZE as autovacuum would have left a live table), and keeps it: a later run whose database already
holds the right rows reuses it, after applying any new migration (--reload loads again). Then it times real
requests through Django's test Client, in this process, logged in as a superuser: the whole stack
(middleware, session, view, queries, templates) but no HTTP server or network.

The baseline is the same pages on a database of 10,000 triggers (and 30,000 exchanges) with the same
distribution, loaded and measured in the same run. A ratio near 1 means the page costs the same whatever the
table size, which is what an index-backed page should do; a ratio that grows with the data is a scan. (A
`SELECT 1` round trip is printed too, for the floor of any query; as a baseline it would mostly measure
Django's template rendering.)

Data: ten flows in four orgs (one micro-batching), skewed; statuses 5% failed, the rest succeeded but for the
newest few hundred (queued, sending, retrying); sources api > webhook > console...; inputs EmailAddress,
IndividualId and TelephoneNumber (70%) of ~N/3 customers, so each email is on ~3 triggers; triggers spread
over 120 days, ids rising with time. Exchanges: per trigger a token request, the invoke and a limits read,
about 600 bytes each with redacted headers and bodies; 3% are org-level (no trigger); the micro-batching
flow's invokes are also linked through Exchange.batch_triggers. All values derive from hashes of the row
number and --seed, so every load is identical.

Only databases named flowgate_bench_scale* are created or dropped. Results: a table on stdout and JSON in
bench/results/scale.json (--quick: scale-quick.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MethodType
from typing import Any

SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
EXCHANGES_PER_TRIGGER = 3
BASELINE_TRIGGERS = 10_000
TARGET_MS = 200  # issue 5: console list, search and trigger page p50 at 1,000,000 triggers
GENERATOR_VERSION = 1  # bump when the generated data changes: loaded databases are then reloaded
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Size:
    triggers: int
    database: str

    @property
    def exchanges(self) -> int:
        return self.triggers * EXCHANGES_PER_TRIGGER


FULL = Size(1_000_000, "flowgate_bench_scale")
QUICK = Size(100_000, "flowgate_bench_scale_quick")
BASE = Size(BASELINE_TRIGGERS, "flowgate_bench_scale_base")


def configure_django(database: str) -> None:
    """Point Django at the bench database before it loads its settings: never at another database."""
    os.environ["DATABASE_URL"] = f"{SERVER}/{database}"
    os.environ["CACHE_URL"] = "locmemcache://bench-scale"  # nothing shared with tests running next to us
    os.environ["CELERY_BROKER_URL"] = "memory://"  # the pages measured enqueue nothing
    os.environ["DATABASE_CONN_MAX_AGE"] = "60"  # persistent connections, as in production
    os.environ["DEBUG"] = "false"  # DEBUG would keep every query in memory
    import portal.testing  # noqa: F401  the test defaults for the rest (keys, hosts, no SSL redirect)

    # Pages link their static files by collectstatic's hashed names (DEBUG off): collected into a folder of ours.
    os.environ["STATIC_ROOT"] = os.path.join(tempfile.gettempdir(), "flowgate-bench-scale-static")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("collectstatic", interactive=False, verbosity=0)


def use_database(database: str) -> None:
    from django.db import connections

    assert database.startswith("flowgate_bench_scale"), database
    connections["default"].close()
    connections["default"].settings_dict["NAME"] = database


# --- loading ----------------------------------------------------------------------------------------

ORGS = ["acme", "globex", "initech", "umbrella"]
# (org index, flow API name, weight in %): a few busy flows and a long tail, as in a real installation.
FLOWS = [(0, "Order_Confirmation", 30), (0, "Shipping_Update", 20), (1, "Order_Confirmation", 12),
         (1, "Welcome_Journey", 10), (2, "Order_Confirmation", 8), (2, "Password_Reset", 6),
         (3, "Order_Confirmation", 5), (3, "Loyalty_Points", 4), (0, "Abandoned_Cart", 3), (1, "Survey", 2)]
BATCH_FLOW = 1  # index in FLOWS of the micro-batching flow: its invokes are linked in batch_triggers
INPUTS = ["EmailAddress", "IndividualId", "TelephoneNumber"]
SPAN_DAYS = 120


def _admin_connect(database: str = "postgres"):
    import psycopg

    return psycopg.connect(f"{SERVER}/{database}", autocommit=True)


def loaded_size(size: Size, seed: int) -> bool:
    """Whether the database exists and holds this size's rows from this generator and seed."""
    with _admin_connect() as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [size.database]).fetchone():
            return False
    with _admin_connect(size.database) as conn:
        if not conn.execute("SELECT to_regclass('bench_scale_meta')").fetchone()[0]:
            return False
        meta = dict(conn.execute("SELECT key, value FROM bench_scale_meta").fetchall())
    return meta == {"triggers": str(size.triggers), "exchanges": str(size.exchanges), "seed": str(seed),
                    "version": str(GENERATOR_VERSION)}


def load(size: Size, seed: int, log: Callable[[str], None]) -> float:
    """Creates the database afresh and fills it; returns the seconds it took."""
    from django.core.management import call_command

    started = time.perf_counter()
    assert size.database.startswith("flowgate_bench_scale"), size.database
    with _admin_connect() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{size.database}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{size.database}"')
    use_database(size.database)
    call_command("migrate", verbosity=0, interactive=False)
    flow_ids, org_ids = _reference_rows()
    log(f"  {size.database}: migrated; generating {size.triggers:,} triggers and {size.exchanges:,} exchanges")
    with _admin_connect(size.database) as conn:
        _generate(conn, size, seed, flow_ids, org_ids, log)
        conn.execute("CREATE TABLE bench_scale_meta (key text PRIMARY KEY, value text NOT NULL)")
        conn.cursor().executemany("INSERT INTO bench_scale_meta VALUES (%s, %s)", [
            ("triggers", str(size.triggers)), ("exchanges", str(size.exchanges)), ("seed", str(seed)),
            ("version", str(GENERATOR_VERSION))])
    return time.perf_counter() - started


def _reference_rows() -> tuple[list[int], list[int]]:
    """Orgs, their client apps, flows and inputs, and the superuser: few rows, through the ORM."""
    from django.contrib.auth import get_user_model

    from flows.models import ExternalClientApp, Flow, FlowInput, Org

    orgs = []
    for slug in ORGS:
        org = Org.objects.create(name=slug.title(), slug=slug, my_domain_url=f"https://{slug}.my.salesforce.com")
        ExternalClientApp.objects.create(org=org, name="Flowgate", consumer_key=f"3MVG9-{slug}-key",
                                         consumer_secret=f"{slug}-secret-0123456789")
        orgs.append(org)
    flow_ids, org_ids = [], []
    for index, (org_index, api_name, _) in enumerate(FLOWS):
        flow = Flow.objects.create(org=orgs[org_index], api_name=api_name, label=api_name.replace("_", " "),
                                   batch_enabled=index == BATCH_FLOW)
        for order, name in enumerate(INPUTS):
            FlowInput.objects.create(flow=flow, name=name, required=name == "IndividualId", order=order)
        flow_ids.append(flow.pk)
        org_ids.append(orgs[org_index].pk)
    get_user_model().objects.create_superuser("bench", "bench@example.com", None)
    return flow_ids, org_ids


def _generate(conn, size: Size, seed: int, flow_ids: list[int], org_ids: list[int],
              log: Callable[[str], None]) -> None:
    n = size.triggers
    # 100 slots filled by weight: a uniform draw of a slot picks a flow with its weight's probability.
    slots = [index + 1 for index, (_, _, weight) in enumerate(FLOWS) for _ in range(weight)]
    assert len(slots) == 100
    params = {
        "n": n, "seed": seed * 1000, "span": SPAN_DAYS, "customers": max(1, n // 3),
        "recent": max(20, n // 2000),  # the newest triggers are still in flight
        "slots": "ARRAY[" + ",".join(map(str, slots)) + "]",
        "flows": "ARRAY[" + ",".join(map(str, flow_ids)) + "]::bigint[]",
        "orgs": "ARRAY[" + ",".join(map(str, org_ids)) + "]::bigint[]",
        "slugs": "ARRAY[" + ",".join(f"'{ORGS[o]}'" for o, _, _ in FLOWS) + "]",
        "names": "ARRAY[" + ",".join(f"'{name}'" for _, name, _ in FLOWS) + "]",
        "batch_flow": BATCH_FLOW + 1,
        # The newest trigger is created about now; one anchor for triggers and exchanges, loaded minutes apart.
        "anchor": time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime()),
    }
    conn.execute("SET synchronous_commit = off")
    conn.execute("SET maintenance_work_mem = '512MB'")
    conn.execute("SET work_mem = '64MB'")
    for sql in FUNCTIONS:
        conn.execute(sql.format(**params))

    tables = ("flows_trigger", "flows_exchange", "flows_exchange_batch_triggers")
    # Secondary indexes are built once after the load instead of row by row during it (much faster);
    # indexes behind constraints (primary keys, unique constraints) stay.
    indexes = conn.execute("""
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.schemaname = 'public' AND i.tablename = ANY(%s) AND NOT EXISTS (
            SELECT 1 FROM pg_constraint c WHERE c.conindid = format('%%I.%%I', i.schemaname, i.indexname)::regclass)
    """, [list(tables)]).fetchall()
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    # The rows are consistent by construction: skip the per-row foreign key checks (superuser only).
    conn.execute("SET session_replication_role = replica")
    step = time.perf_counter()
    with conn.transaction():
        conn.execute(TRIGGERS_SQL.format(**params))
    log(f"  triggers inserted in {time.perf_counter() - step:.0f} s")
    step = time.perf_counter()
    with conn.transaction():
        conn.execute(EXCHANGES_SQL.format(**params))
        conn.execute(LINKS_SQL.format(**params))
    log(f"  exchanges and batch links inserted in {time.perf_counter() - step:.0f} s")
    conn.execute("SET session_replication_role = DEFAULT")
    for table in tables:
        conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                     f"(SELECT coalesce(max(id), 1) FROM {table}))")
    step = time.perf_counter()
    for _, definition in indexes:
        conn.execute(definition)
    log(f"  {len(indexes)} indexes built in {time.perf_counter() - step:.0f} s")
    step = time.perf_counter()
    for table in tables:
        conn.execute(f"VACUUM (ANALYZE) {table}")
    log(f"  vacuumed and analyzed in {time.perf_counter() - step:.0f} s")


# bench_u(g, salt): a uniform draw in [0, 1) from a hash of the row number, so a load is deterministic
# whatever the plan or parallelism (random() with setseed() is not, across parallel workers).
FUNCTIONS = [
    """CREATE FUNCTION bench_u(g bigint, salt int) RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE
       AS $$ SELECT (hashint8(g * 7919 + salt + {seed})::bigint + 2147483648) / 4294967296.0 $$""",
    """CREATE FUNCTION bench_flow(g bigint) RETURNS int LANGUAGE sql IMMUTABLE PARALLEL SAFE
       AS $$ SELECT ({slots})[1 + floor(bench_u(g, 1) * 100)::int] $$""",
    """CREATE FUNCTION bench_customer(g bigint) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
       AS $$ SELECT 1 + floor(bench_u(g, 2) * {customers})::bigint $$""",
    """CREATE FUNCTION bench_status(g bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
       SELECT CASE
         WHEN g > {n} - {recent} THEN (ARRAY['queued','sending','retrying','failed','succeeded','succeeded'])
                                      [1 + floor(bench_u(g, 3) * 6)::int]
         WHEN bench_u(g, 3) < 0.05 THEN 'failed' ELSE 'succeeded' END $$""",
    """CREATE FUNCTION bench_created(g bigint) RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
       SELECT timestamptz '{anchor}' - interval '{span} days'
              + (g - 1 + bench_u(g, 4)) * (interval '{span} days' / {n}) $$""",
    """CREATE FUNCTION bench_inputs(g bigint) RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
       SELECT jsonb_strip_nulls(jsonb_build_object(
         'EmailAddress', 'customer' || c || '@' || (ARRAY['example.com','mail.example.org','shop.example.net',
                         'example.co.uk','post.example.de'])[1 + c % 5],
         'IndividualId', '003' || lpad(upper(to_hex(c)), 15, '0'),
         'TelephoneNumber', CASE WHEN c % 10 < 7 THEN '+1555' || lpad((c % 10000000)::text, 7, '0') END))
       FROM (SELECT bench_customer(g) AS c) s $$""",
]

TRIGGERS_SQL = """
INSERT INTO flows_trigger (id, flow_id, inputs, status, source, actor_id, actor_label, idempotency_key,
    resend_of_id, resend_job_id, attempts, next_attempt_at, enqueued_at, claim_token, outputs, error_code,
    error_message, hint, created_at, updated_at, finished_at, key)
SELECT g, ({flows})[f], bench_inputs(g), status, source, NULL,
    CASE source WHEN 'api' THEN 'ERP sync' WHEN 'webhook' THEN 'Shopify ' || ({slugs})[f] ELSE '' END,
    CASE WHEN source = 'api' AND u5 < 0.6 THEN 'order-' || g END,
    CASE WHEN source = 'resend' AND g > 50 THEN g - 1 - floor(u5 * 40)::bigint END, NULL,
    CASE status WHEN 'failed' THEN 1 + floor(u5 * 6)::int WHEN 'queued' THEN 0 ELSE 1 + (u5 < 0.03)::int END,
    CASE WHEN status IN ('retrying', 'queued') THEN created + interval '30 seconds' END, NULL, '',
    CASE WHEN status = 'succeeded' THEN jsonb_build_object('Flow__InterviewStatus', 'Finished',
        'Flow__InterviewGuid', '0Fo' || lpad(upper(to_hex(g)), 15, '0')) END,
    CASE WHEN status = 'failed' THEN (ARRAY['UNKNOWN_EXCEPTION','UNKNOWN_EXCEPTION','FLOW_ERROR',
        'REQUIRED_FIELD_MISSING','INVALID_SESSION_ID','TIMEOUT'])[e] ELSE '' END,
    CASE WHEN status = 'failed' THEN (ARRAY[
        'An unhandled fault has occurred in this flow: an error occurred when executing a flow interview.',
        'An unexpected error occurred. Please include this ErrorId if you contact support: 1932715834-2213.',
        'The flow failed to access the value for $Record.Contact.Email because it has not been set.',
        'Required fields are missing: [IndividualId]',
        'Session expired or invalid',
        'No response from Salesforce within 30 s.'])[e] ELSE '' END,
    CASE WHEN status = 'failed' THEN (ARRAY[
        'Open the flow in Setup and check its fault paths; Salesforce says which element failed.',
        'Retry later; if it persists, open a case with Salesforce with the ErrorId.',
        'Send the input the flow needs, or make the flow tolerate a missing value.',
        'Send every required input.',
        'Check the External Client App''s Run As user and its session policies.',
        'Salesforce may have run the flow; check before re-sending.'])[e] ELSE '' END,
    created, created + finish, CASE WHEN status IN ('succeeded', 'failed') THEN created + finish END,
    md5(g::text || '-{seed}')::uuid
FROM (
    SELECT g, bench_flow(g) AS f, bench_status(g) AS status, bench_created(g) AS created, bench_u(g, 5) AS u5,
        1 + floor(bench_u(g, 6) * 6)::int AS e,
        interval '1 millisecond' * (150 + floor(bench_u(g, 7) * 2000)) AS finish,
        CASE WHEN bench_u(g, 8) < 0.50 THEN 'api' WHEN bench_u(g, 8) < 0.85 THEN 'webhook'
             WHEN bench_u(g, 8) < 0.92 THEN 'console' WHEN bench_u(g, 8) < 0.95 THEN 'resend'
             WHEN bench_u(g, 8) < 0.98 THEN 'cli' ELSE 'admin' END AS source
    FROM generate_series(1, {n}) g
) s
"""

EXCHANGES_SQL = """
INSERT INTO flows_exchange (id, org_id, trigger_id, kind, method, url, request_headers, request_body,
    response_status, response_headers, response_body, network_error, duration_ms, created_at, classification, late)
SELECT x, ({orgs})[f], CASE WHEN org_level THEN NULL ELSE t END, kind,
    CASE kind WHEN 'limits' THEN 'GET' ELSE 'POST' END,
    'https://' || ({slugs})[f] || '.my.salesforce.com' || CASE kind
        WHEN 'token' THEN '/services/oauth2/token'
        WHEN 'invoke' THEN '/services/data/v65.0/actions/custom/flow/' || ({names})[f]
        ELSE '/services/data/v65.0/limits' END,
    jsonb_strip_nulls(jsonb_build_object('User-Agent', 'flowgate/0.1 python-requests/2.32.3',
        'Accept', 'application/json', 'Accept-Encoding', 'gzip, deflate', 'Connection', 'keep-alive',
        'Content-Type', CASE kind WHEN 'token' THEN 'application/x-www-form-urlencoded' ELSE 'application/json' END,
        'Authorization', CASE kind WHEN 'token' THEN NULL ELSE 'Bearer [REDACTED]' END)),
    CASE kind
        WHEN 'token' THEN 'grant_type=client_credentials&client_id=[REDACTED]&client_secret=[REDACTED]'
        WHEN 'invoke' THEN '{{"inputs": [' || bench_inputs(t)::text || ']}}'
        ELSE '' END,
    status_code,
    jsonb_build_object('Date', to_char(created, 'Dy, DD Mon YYYY HH24:MI:SS "GMT"'),
        'Content-Type', 'application/json;charset=UTF-8', 'Transfer-Encoding', 'chunked',
        'Sforce-Limit-Info', 'api-usage=' || (x % 90000) || '/100000', 'Vary', 'Accept-Encoding',
        'Strict-Transport-Security', 'max-age=63072000; includeSubDomains',
        'X-Content-Type-Options', 'nosniff', 'X-Robots-Tag', 'none', 'Cache-Control', 'no-cache,must-revalidate'),
    CASE kind
        WHEN 'token' THEN '{{"access_token": "[REDACTED]", "signature": "[REDACTED]", "scope": "api", '
            || '"instance_url": "https://' || ({slugs})[f] || '.my.salesforce.com", "id": '
            || '"https://login.salesforce.com/id/00D5g000004ABCDEAZ/0055g00000XYZ12AAF", "token_type": "Bearer", '
            || '"issued_at": "' || (extract(epoch FROM created) * 1000)::bigint || '"}}'
        WHEN 'invoke' THEN CASE WHEN status = 'failed' THEN
            '[{{"actionName": "' || ({names})[f] || '", "errors": [{{"statusCode": "UNKNOWN_EXCEPTION", '
            || '"message": "An unhandled fault has occurred in this flow", "fields": []}}], "isSuccess": false, '
            || '"outputValues": null, "version": 1}}]'
            ELSE '[{{"actionName": "' || ({names})[f] || '", "errors": null, "isSuccess": true, '
            || '"outputValues": {{"Flow__InterviewGuid": "0Fo' || lpad(upper(to_hex(t)), 15, '0')
            || '", "Flow__InterviewStatus": "Finished"}}, "version": 1}}]' END
        ELSE '{{"DailyApiRequests": {{"Max": 100000, "Remaining": ' || (100000 - x % 90000) || '}}, '
            || '"DailyAsyncApexExecutions": {{"Max": 250000, "Remaining": 250000}}}}' END,
    '', duration, created, '', false
FROM (
    SELECT x, t, kind, f, status, org_level,
        bench_created(t) + interval '1 millisecond' * (k * 300 + floor(bench_u(x, 11) * 200)) AS created,
        CASE WHEN kind = 'invoke' AND status = 'failed' THEN 400 ELSE 200 END AS status_code,
        40 + floor(bench_u(x, 12) * 400)::int AS duration
    FROM (
        SELECT x, (x - 1) / {per} + 1 AS t, (x - 1) % {per} AS k,
            (ARRAY['token', 'invoke', 'limits'])[1 + (x - 1) % {per}] AS kind,
            bench_flow((x - 1) / {per} + 1) AS f, bench_status((x - 1) / {per} + 1) AS status,
            (x - 1) % {per} = 2 AND bench_u(x, 10) < 0.09 AS org_level
        FROM generate_series(1, {n} * {per}) x
    ) a
) b
""".replace("{per}", str(EXCHANGES_PER_TRIGGER))

LINKS_SQL = """
INSERT INTO flows_exchange_batch_triggers (exchange_id, trigger_id)
SELECT (t - 1) * {per} + 2, t FROM generate_series(1, {n}) t WHERE bench_flow(t) = {batch_flow}
""".replace("{per}", str(EXCHANGES_PER_TRIGGER))


# --- measuring --------------------------------------------------------------------------------------


@dataclass
class Scenario:
    key: str
    label: str
    urls: list[str]
    check: Callable[[str, Any], None]
    target_ms: float | None = None
    patch: Callable[[], Callable[[], None]] | None = None  # applies a change to the admin, returns its undo


@dataclass
class Timing:
    p50_ms: float
    p99_ms: float
    mean_ms: float
    samples: int
    queries: int = 0
    slowest_query_ms: float = 0.0
    explain: list[str] = field(default_factory=list)


def percentile(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] if len(samples) > 1 else samples[0]


def timing(samples: list[float], captured: list[dict[str, Any]]) -> Timing:
    slowest = max((float(q["time"]) for q in captured), default=0.0)
    return Timing(p50_ms=percentile(samples, 50), p99_ms=percentile(samples, 99),
                  mean_ms=statistics.fmean(samples), samples=len(samples), queries=len(captured),
                  slowest_query_ms=slowest * 1000)


def scenarios(size: Size, seed: int) -> list[Scenario]:
    """The pages to time on the database in use, with ids and emails drawn from it (fixed seed)."""
    from django.contrib import admin

    from flows.admin_paging import CappedCountPaginator, IndexedSearchMixin, ResponseStatusClassFilter
    from flows.models import Exchange, Trigger

    draw = random.Random(seed)
    settled = size.triggers - max(20, size.triggers // 2000)
    page_ids = [draw.randint(1, settled) for _ in range(20)]
    email_ids = [draw.randint(1, settled) for _ in range(20)]
    emails = dict(Trigger.objects.filter(pk__in=email_ids).values_list("pk", "inputs__EmailAddress"))

    def ok(*needles: str) -> Callable[[str, Any], None]:
        def check(body: str, response: Any) -> None:
            if response.status_code != 200 or not all(needle in body for needle in needles):
                raise AssertionError(f"{response.status_code}: {body[:500]}")

        return check

    def wired(model, **search: tuple[str, ...]) -> Callable[[], Callable[[], None]] | None:
        """The changelist as it will be once flows/admin.py takes the admin_paging wiring (None: it has)."""
        model_admin = admin.site._registry[model]
        changes: dict[str, Any] = {}
        if not isinstance(model_admin, IndexedSearchMixin):
            changes.update({"search_id_fields": (), "search_exact_fields": (), **search})
            for method in ("get_search_fields", "get_search_results"):
                changes[method] = MethodType(getattr(IndexedSearchMixin, method), model_admin)
        if not issubclass(model_admin.paginator, CappedCountPaginator):
            changes["paginator"] = CappedCountPaginator
        if model_admin.date_hierarchy:
            changes["date_hierarchy"] = None
        if "response_status" in model_admin.list_filter:
            changes["list_filter"] = [ResponseStatusClassFilter if f == "response_status" else f
                                      for f in model_admin.list_filter]
        if not changes:
            return None

        def apply() -> Callable[[], None]:
            absent = object()
            before = {name: model_admin.__dict__.get(name, absent) for name in changes}
            for name, value in changes.items():
                setattr(model_admin, name, value)

            def undo() -> None:
                for name, value in before.items():
                    if value is absent:
                        del model_admin.__dict__[name]
                    else:
                        setattr(model_admin, name, value)

            return undo

        return apply

    def dashboard_at_newest_trigger(*, week_cached: bool = True) -> Callable[[], None]:
        """The dashboard's windows end at the newest trigger of the database in use rather than now: a loaded
        database is reused for days, and its last 24 hours would be empty. (One more query, by an index.)
        Not `week_cached`: the 7-day charts' rows, shared for 2 minutes, are read on every request (the first
        viewer's cost)."""
        from flows import dashboard

        original, cached_for = dashboard.clock, dashboard.WEEK_CACHE_SECONDS
        dashboard.clock = lambda: (Trigger.objects.order_by("-created_at").values_list("created_at", flat=True)
                                   .first() or original())
        if not week_cached:
            dashboard.WEEK_CACHE_SECONDS = 0  # read every time

        def undo() -> None:
            dashboard.clock, dashboard.WEEK_CACHE_SECONDS = original, cached_for

        return undo

    result = [
        Scenario("console_failed", "console: failed triggers  /console/", ["/console/"],
                 ok('id="result_list"', "/console/triggers/"), TARGET_MS),
        Scenario("console_search_hit", "console: search, email present",
                 [f"/console/?q={email}" for _, email in sorted(emails.items())], ok("/console/triggers/"), TARGET_MS),
        Scenario("console_search_miss", "console: search, email absent",
                 [f"/console/?q=nobody{i}@example.invalid" for i in range(20)],
                 ok("No triggers match this filter."), TARGET_MS),
        Scenario("console_trigger", "console: trigger page", [f"/console/triggers/{pk}/" for pk in page_ids],
                 ok("Exchanges with Salesforce", "exchange-"), TARGET_MS),
        Scenario("console_dashboard", "console: dashboard  /console/dashboard/", ["/console/dashboard/"],
                 ok("Needs a person now", '<figure class="chart"'), TARGET_MS, patch=dashboard_at_newest_trigger),
        Scenario("console_dashboard_cold", "console: dashboard, 7 days read afresh", ["/console/dashboard/"],
                 ok("Needs a person now", '<figure class="chart"'),
                 patch=lambda: dashboard_at_newest_trigger(week_cached=False)),
        Scenario("admin_triggers", "admin: trigger changelist", ["/admin/flows/trigger/"], ok('id="result_list"')),
        Scenario("admin_exchanges", "admin: exchange changelist", ["/admin/flows/exchange/"],
                 ok('id="result_list"')),
        Scenario("admin_trigger_search", "admin: trigger search by id",
                 [f"/admin/flows/trigger/?q={pk}" for pk in page_ids], ok("/change/")),
        Scenario("admin_exchange_search", "admin: exchange search by trigger id",
                 [f"/admin/flows/exchange/?q={pk}" for pk in page_ids], ok("/change/")),
    ]
    trigger_search = {"search_id_fields": ("pk",), "search_exact_fields": ("idempotency_key",)}
    exchange_search = {"search_id_fields": ("trigger_id",)}
    for key, model, search in (("admin_triggers", Trigger, trigger_search),
                               ("admin_exchanges", Exchange, exchange_search),
                               ("admin_trigger_search", Trigger, trigger_search),
                               ("admin_exchange_search", Exchange, exchange_search)):
        if (patch := wired(model, **search)) is not None:
            plain = next(s for s in result if s.key == key)
            result.append(Scenario(f"{key}_wired", f"{plain.label}, admin_paging wiring", plain.urls, plain.check,
                                   patch=patch))
    return result


class Side:
    """One database with its own connection and logged-in client. Both sides stay connected, and requests
    alternate between them, so a neighbour's load on this machine hits the baseline and the scale alike."""

    def __init__(self, size: Size, seed: int) -> None:
        from django.contrib.auth import get_user_model
        from django.db import connections
        from django.test import Client

        self.size = size
        template = connections["default"]
        self.connection = type(template)({**template.settings_dict, "NAME": size.database}, alias="default")
        self.activate()
        self.client = Client()
        self.client.force_login(get_user_model().objects.get(username="bench"))
        self.scenarios = {scenario.key: scenario for scenario in scenarios(size, seed)}

    def activate(self) -> None:
        from django.db import connections

        connections["default"] = self.connection

    def get(self, scenario: Scenario, i: int) -> float:
        """Milliseconds for the i-th request of a scenario: the whole response, body included."""
        self.activate()
        started = time.perf_counter()
        response = self.client.get(scenario.urls[i % len(scenario.urls)])
        body = response.content.decode()
        elapsed = (time.perf_counter() - started) * 1000
        scenario.check(body, response)
        return elapsed

    def captured(self, scenario: Scenario, explain: bool) -> tuple[list[dict[str, Any]], list[str]]:
        """One more request with its queries captured (outside the timings: capturing costs a little), and the
        EXPLAIN ANALYZE of its three slowest queries."""
        from django.test.utils import CaptureQueriesContext

        self.activate()
        with CaptureQueriesContext(self.connection) as captured:
            self.get(scenario, 0)
        plans = []
        if explain:
            # Reads only: a page's SET (flows/plans.py) or a session write has no plan worth reading.
            reads = [q for q in captured.captured_queries if q["sql"].lstrip().upper().startswith(("SELECT", "WITH"))]
            slowest = sorted(reads, key=lambda q: float(q["time"]), reverse=True)[:3]
            with self.connection.cursor() as cursor:
                for query in slowest:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
                    plan = "\n".join(row[0] for row in cursor.fetchall())
                    plans.append(f"-- {float(query['time']) * 1000:.1f} ms\n{query['sql']}\n{plan}")
        return captured.captured_queries, plans

    def select_one(self, requests: int) -> Timing:
        self.activate()
        samples = []
        with self.connection.cursor() as cursor:
            for i in range(requests + 5):
                started = time.perf_counter()
                cursor.execute("SELECT 1")
                cursor.fetchone()
                if i >= 5:
                    samples.append((time.perf_counter() - started) * 1000)
        return timing(samples, [])


def measure(base: Side, scale: Side, key: str, *, warmup: int, requests: int, budget: float, explain: bool,
            log: Callable[[str], None]) -> tuple[Scenario, Timing, Timing]:
    """Alternates base and scale requests: `warmup` each untimed, then up to `requests` each, stopping once
    `budget` seconds are spent (a page with a target still gets MIN_SAMPLES; one without, fewer)."""
    scenario = scale.scenarios[key]
    undo = scenario.patch() if scenario.patch else None
    try:
        warming = time.perf_counter()
        for i in range(warmup):
            base.get(base.scenarios[key], i)
            scale.get(scenario, i)
            if time.perf_counter() - warming > budget / 4:  # a page taking seconds is warm after one
                break
        samples: dict[str, list[float]] = {"base": [], "scale": []}
        started = time.perf_counter()
        for i in range(requests):
            samples["base"].append(base.get(base.scenarios[key], i))
            samples["scale"].append(scale.get(scenario, i))
            enough = MIN_SAMPLES if scenario.target_ms else MIN_SAMPLES_UNTARGETED
            if i + 1 >= enough and time.perf_counter() - started > budget:
                break
        base_queries, _ = base.captured(base.scenarios[key], explain=False)
        scale_queries, plans = scale.captured(scenario, explain=explain)
    finally:
        if undo:
            undo()
    b, s = timing(samples["base"], base_queries), timing(samples["scale"], scale_queries)
    s.explain = plans
    log(f"  {scenario.label:<55} p50 {s.p50_ms:7.1f} ms (baseline {b.p50_ms:6.1f} ms, {s.samples} requests)")
    return scenario, b, s


MIN_SAMPLES = 10
MIN_SAMPLES_UNTARGETED = 3  # a page taking seconds as it is today: enough to show it, not to rank it


# --- reporting --------------------------------------------------------------------------------------


def report(size: Size, results: list[tuple[Scenario, Timing, Timing]], select1: tuple[Timing, Timing],
           load: tuple[float, float]) -> list[dict[str, Any]]:
    rows = []
    print()
    print(f"Scale: {size.triggers:,} triggers, {size.exchanges:,} exchanges. Baseline: the same pages at "
          f"{BASE.triggers:,} triggers, requests alternating with the scale ones. x = scale / baseline.")
    header = (f"{'page':<58}{'p50 ms':>8}{'p99 ms':>8}{'base p50':>9}{'base p99':>9}{'x p50':>7}{'x p99':>7}"
              f"{'n':>4}{'queries':>8}  target")
    print(header)
    print("-" * len(header))
    for scenario, b, s in results:
        meets = None if scenario.target_ms is None else s.p50_ms <= scenario.target_ms
        target = "" if meets is None else f"p50 <= {scenario.target_ms:.0f} ms: {'met' if meets else 'MISSED'}"
        print(f"{scenario.label:<58}{s.p50_ms:8.1f}{s.p99_ms:8.1f}{b.p50_ms:9.1f}{b.p99_ms:9.1f}"
              f"{s.p50_ms / b.p50_ms:7.2f}{s.p99_ms / b.p99_ms:7.2f}{s.samples:4d}{s.queries:8d}  {target}")
        rows.append({"key": scenario.key, "page": scenario.label, "urls": scenario.urls[:3],
                     "scale": asdict(s), "baseline": asdict(b), "ratio_p50": s.p50_ms / b.p50_ms,
                     "ratio_p99": s.p99_ms / b.p99_ms, "target_p50_ms": scenario.target_ms,
                     "meets_target": meets})
    print(f"{'SELECT 1 round trip (the floor of any query)':<58}{select1[0].p50_ms:8.2f}{select1[0].p99_ms:8.2f}"
          f"{select1[1].p50_ms:9.2f}{select1[1].p99_ms:9.2f}")
    print(f"Load average during the run: {load[0]:.1f} at the start, {load[1]:.1f} at the end, on "
          f"{os.cpu_count()} CPUs" + ("  (busy machine: absolute times are inflated; the ratios less so)"
                                      if max(load) > (os.cpu_count() or 1) else ""))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK.triggers:,} triggers instead of {FULL.triggers:,}")
    parser.add_argument("--reload", action="store_true", help="Load the databases again even if they fit.")
    parser.add_argument("--requests", type=int, default=None,
                        help="Timed requests per page and side (default 30; 50 in the full run).")
    parser.add_argument("--budget", type=float, default=None,
                        help="Seconds per page after which fewer requests are timed (default 10; 30 full).")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--explain", action="store_true",
                        help="Print EXPLAIN ANALYZE of each page's three slowest queries at scale.")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    requests = args.requests or (30 if args.quick else 50)
    budget = args.budget or (10.0 if args.quick else 30.0)
    started = time.perf_counter()
    load_start = os.getloadavg()[0]

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    configure_django(BASE.database)
    from django.core.management import call_command
    from django.db import connections

    loads = {}
    for each in (BASE, size):
        if args.reload or not loaded_size(each, args.seed):
            log(f"loading {each.database} ({each.triggers:,} triggers)")
            loads[each.database] = load(each, args.seed, log)
        else:
            # Migrations added since the load (an index, say) are applied to the loaded rows, as a release would.
            log(f"reusing {each.database} ({each.triggers:,} triggers); migrating")
            use_database(each.database)
            call_command("migrate", verbosity=0, interactive=False)
    connections["default"].close()
    log(f"measuring {size.triggers:,} triggers against the {BASE.triggers:,} baseline")
    base, scale = Side(BASE, args.seed), Side(size, args.seed)
    results = [measure(base, scale, key, warmup=args.warmup, requests=requests, budget=budget,
                       explain=args.explain, log=log) for key in scale.scenarios]
    select1 = (scale.select_one(requests), base.select_one(requests))
    rows = report(size, results, select1, (load_start, os.getloadavg()[0]))
    if args.explain:
        for scenario, _, s in results:
            print(f"\n=== {scenario.label}")
            print("\n\n".join(s.explain))

    scale.activate()
    with scale.connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server = cursor.fetchone()[0]
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / ("scale-quick.json" if args.quick else "scale.json")
    out.write_text(json.dumps({
        "benchmark": "scale (issue 5, item 5)", "mode": "quick" if args.quick else "full",
        "triggers": size.triggers, "exchanges": size.exchanges, "baseline_triggers": BASE.triggers,
        "baseline": "the same pages on a 10,000-trigger database of the same distribution, requests alternating",
        "seed": args.seed, "warmup": args.warmup, "requests": requests, "budget_seconds": budget,
        "target_p50_ms": TARGET_MS,
        "select_1_ms": {"scale": asdict(select1[0]), "baseline": asdict(select1[1])},
        "load_seconds": loads, "total_seconds": time.perf_counter() - started,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "postgresql": server,
                    "load_average": {"start": load_start, "end": os.getloadavg()[0]}},
        "pages": rows,
    }, indent=2) + "\n")
    log(f"wrote {out}")
    return 1 if any(row["meets_target"] is False for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
