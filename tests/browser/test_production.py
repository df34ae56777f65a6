"""The portal run as the README's production section runs it, in a real browser.

Real processes, DEBUG off, started as the Procfile says: `scripts/procfile release` (collectstatic into a fresh
STATIC_ROOT), then `scripts/procfile web` (gunicorn, 2 workers) serving the pages and, through WhiteNoise,
/static/ (hashed names, compressed, cached for ever). A real Celery worker (the session's `worker`, on the same
Redis broker as gunicorn) sends the fired trigger to the emulator, and the trigger page follows it live. Plain
http on loopback, so the three HTTPS switches are off, as the README documents.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from django.conf import settings
from playwright.sync_api import Page, Request, Response, expect

from flows.models import Trigger
from tests.conftest import admin_user, support_user

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]  # the project: manage.py, portal/
LIVE = 60_000  # ms: a trigger takes a few seconds here (the emulator answers late on purpose); slack for busy CI
START_TIMEOUT = 60  # s for gunicorn to answer
FOREVER = 315360000  # s: WhiteNoise's max-age for hashed (immutable) names, ten years
TRANSPARENT = ("rgba(0, 0, 0, 0)", "transparent")  # an unstyled element's background


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_database_url() -> str:
    """The URL of the database pytest-django created for this run (test_...), for processes of our own."""
    db = settings.DATABASES["default"]
    assert db["ENGINE"] == "django.db.backends.postgresql", "the production test runs against PostgreSQL"
    credentials = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or "127.0.0.1"
    port = db["PORT"] or 5432
    return f"postgres://{credentials}{'@' if credentials else ''}{host}:{port}/{db['NAME']}"


@dataclass
class Portal:
    url: str
    process: subprocess.Popen
    log: Path

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError as error:
            return f"(no log: {error})"
        return "\n".join(text.splitlines()[-lines:]) or "(empty)"

    def state(self) -> str:
        """gunicorn's state for a failure message: alive or its exit code, and the tail of its stderr."""
        code = self.process.poll()
        alive = "gunicorn is running" if code is None else f"gunicorn EXITED with code {code}"
        return f"{alive}; last lines of its stderr ({self.log}):\n{self.tail()}"


@pytest.fixture
def production_env(tmp_path) -> dict[str, str]:
    """The test process's environment (the test defaults, the run's own broker and cache), pointed at this
    run's test database and a fresh STATIC_ROOT, DEBUG off and plain http on loopback."""
    return {
        **os.environ,
        "DATABASE_URL": run_database_url(),
        "STATIC_ROOT": str(tmp_path / "static"),
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "PYTHONUNBUFFERED": "1",
        # The Procfile's programs from this test's own virtualenv.
        "FLOWGATE_VENV": str(Path(sys.executable).parent.parent),
    }


@pytest.fixture
def portal(transactional_db, production_env, tmp_path) -> Iterator[Portal]:
    """The Procfile's release (migrate: nothing to do on the test database; collectstatic), then its web process
    (gunicorn, 2 workers) on a free port; stopped at the end (before the test database is flushed)."""
    static_root = Path(production_env["STATIC_ROOT"])
    collected = subprocess.run(
        [ROOT / "scripts" / "procfile", "release"], cwd=ROOT, env=production_env,
        capture_output=True, text=True, timeout=180,
    )
    assert collected.returncode == 0, (
        f"the release step exited with {collected.returncode}:\n{collected.stdout[-2000:]}\n"
        f"{collected.stderr[-4000:]}")
    assert (static_root / "console").is_dir(), (
        f"collectstatic wrote nothing in {static_root}: is STATIC_ROOT read from the environment?\n"
        f"{collected.stdout[-2000:]}")

    port = free_port()
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [ROOT / "scripts" / "procfile", "web"], cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT,
            env={**production_env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "2"},
            start_new_session=True,
        )
    running = Portal(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"gunicorn did not start. {running.state()}", pytrace=False)
            try:
                answer = requests.get(f"{running.url}/admin/login/", timeout=5, allow_redirects=False)
            except requests.RequestException:
                answer = None
            if answer is not None:
                assert answer.status_code == 200, (
                    f"GET /admin/login/ answered {answer.status_code}, not 200. {running.state()}")
                break
            if time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not answer within {START_TIMEOUT} s. {running.state()}", pytrace=False)
            time.sleep(0.2)
        yield running
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # its own session: the master and its workers
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def log_in(page: Page, portal: Portal, username: str, password: str) -> None:
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{portal.url}/console/**", timeout=LIVE)


def header_background(page: Page) -> str:
    return page.evaluate("getComputedStyle(document.getElementById('header')).backgroundColor")


def max_age(cache_control: str) -> int:
    found = re.search(r"max-age=(\d+)", cache_control)
    return int(found.group(1)) if found else 0


def static_answer(page: Page, request: Request, portal: Portal, what: str) -> tuple[Response, dict[str, str]]:
    """The answer the browser got for a static file, checked as WhiteNoise serves hashed names: 200, cached for
    ever. A stylesheet or script answered with an HTML 404 never reaches Playwright as a response (Chromium
    refuses it under nosniff): it is then fetched directly so the message says what the server answered."""
    response = request.response()
    if response is None:
        direct = page.request.get(request.url)
        pytest.fail(
            f"{what} {request.url} did not load in the browser ({request.failure}); fetched directly it answers "
            f"{direct.status} {direct.headers.get('content-type')!r}: /static/ is not served by the app (WhiteNoise) "
            f"with DEBUG off. {portal.state()}", pytrace=False)
    headers = response.all_headers()
    assert response.status == 200, (
        f"{what} {response.url} answered {response.status}, not 200: /static/ is not served by the app "
        f"(WhiteNoise) with DEBUG off. {portal.state()}")
    cache_control = headers.get("cache-control", "")
    assert max_age(cache_control) >= FOREVER or "immutable" in cache_control, (
        f"{what} {response.url} is not cached for ever: Cache-Control is {cache_control!r} "
        f"(expected max-age={FOREVER} or immutable, as WhiteNoise sends for hashed names)")
    return response, headers


def test_alice_and_bob_use_the_portal_served_by_gunicorn_with_its_static_files(
        page: Page, browser, portal: Portal, emu_flow, emulator, worker):
    admin_user("alice", "alice-password-1")
    support_user("bob", "bob-password-1")

    # --- alice logs in through the admin's login page: the admin's CSS, hashed, cached for ever, applied.
    with page.expect_request(lambda r: "/static/admin/css/base." in r.url, timeout=LIVE) as css_info:
        page.goto(f"{portal.url}/admin/login/?next=/console/")
    css = css_info.value
    assert re.search(r"/static/admin/css/base\.[0-9a-f]{12}\.css$", css.url), (
        f"the admin's CSS is not linked by its hashed name (collectstatic's manifest): {css.url}")
    static_answer(page, css, portal, "the admin's CSS")
    assert header_background(page) not in TRANSPARENT, (
        f"the login page is unstyled: #header's background is the browser's default. {portal.state()}")

    # --- the console (where the login leads) links its script by its hashed name, served compressed.
    console_js = re.compile(r"/static/console/console\.[^/]*js$")
    with page.expect_request(lambda r: bool(console_js.search(r.url)), timeout=LIVE) as js_info:
        log_in(page, portal, "alice", "alice-password-1")
    src = page.locator("script[src*='/static/console/console.']").get_attribute("src")
    assert re.fullmatch(r"/static/console/console\.[0-9a-f]{12}\.js", src or ""), (
        f"the console links its script as {src!r}, not by its hashed name")
    script, headers = static_answer(page, js_info.value, portal, "the console's script")
    accepted = script.request.all_headers().get("accept-encoding", "")
    assert "gzip" in accepted, f"Chromium did not offer gzip ({accepted!r}): cannot check compression"
    assert headers.get("content-encoding") in ("gzip", "br"), (
        f"the console's script was sent uncompressed (Content-Encoding {headers.get('content-encoding')!r}) "
        f"although the browser accepts {accepted!r}: collectstatic's compressed copies are not served")

    # --- alice fires the flow from the console's fire form; the trigger page follows it without a reload.
    emulator.emulator.configure(slow_next=1, slow_ms=5000)  # the flow runs, its answer comes 5 s later
    page.goto(f"{portal.url}/console/flows/{emu_flow.pk}/fire/")
    page.fill("#id_IndividualId", "003PROD")
    page.fill("#id_EmailAddress", "ada@example.com")
    page.click("input[value='Fire flow']")
    page.wait_for_url(re.compile(r".*/console/triggers/\d+/$"), timeout=LIVE)
    trigger = Trigger.objects.get(flow=emu_flow)
    assert page.url == f"{portal.url}/console/triggers/{trigger.pk}/"

    status = page.locator("#trigger-live .status")
    first_seen = status.inner_text()
    assert first_seen in ("queued", "sending"), (
        f"the trigger page opened on {first_seen!r}: expected it queued or sending (the emulator answers 5 s late)")
    page.evaluate("window.__notReloaded = true")  # gone if the page is loaded again
    live_url = f"{portal.url}/console/triggers/{trigger.pk}/live/"
    live_answers: list[Response] = []
    page.on("response", lambda answer: live_answers.append(answer) if answer.url == live_url else None)

    def page_shows(expected: str) -> None:
        try:
            expect(status).to_have_text(expected, timeout=LIVE)
        except AssertionError as error:
            in_db = Trigger.objects.filter(pk=trigger.pk).values_list("status", flat=True).first()
            raise AssertionError(
                f"the trigger page did not update live to {expected!r} (the database says {in_db!r}; "
                f"{len(live_answers)} answers from {live_url}: {[a.status for a in live_answers][-5:]}).\n"
                f"{error}\n{portal.state()}") from None

    page_shows("sending")
    page_shows("succeeded")
    expect(page.locator("#trigger-live")).to_have_attribute("data-final", "true")
    assert page.evaluate("window.__notReloaded === true"), "the trigger page was reloaded instead of updated live"
    assert page.url == f"{portal.url}/console/triggers/{trigger.pk}/"
    assert live_answers and all(answer.status == 200 for answer in live_answers), (
        f"the live part was not fetched from gunicorn: {[(a.url, a.status) for a in live_answers]}")
    # console.css is applied too: a succeeded status is green.
    assert status.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(46, 125, 50)", (
        "the status badge is not styled by the console's CSS")
    trigger.refresh_from_db()
    assert (trigger.status, trigger.source, trigger.actor.username) == ("succeeded", "console", "alice")
    assert emulator.emulator.snapshot()["slow_calls"] == 1

    # --- bob (Support) sees a styled console as well.
    bob_context = browser.new_context()
    try:
        bob_page = bob_context.new_page()
        bob_page.goto(f"{portal.url}/admin/login/?next=/console/")
        log_in(bob_page, portal, "bob", "bob-password-1")
        assert header_background(bob_page) not in TRANSPARENT, (
            f"bob's console page is unstyled: #header's background is the browser's default. {portal.state()}")
    finally:
        bob_context.close()
