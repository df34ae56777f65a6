"""Browser tests: Playwright driving Debian's Chromium (no browser download) against the live server, a real
worker and the emulator."""

from __future__ import annotations

import os
import shutil

import pytest

# Playwright's sync API runs an event loop in this thread; Django's guard would refuse the ORM calls the
# tests make between clicks. Only the tests set this.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture
def login(page, live_server):
    def login_as(username: str, password: str) -> None:
        page.goto(f"{live_server.url}/admin/login/?next=/console/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/console/**")

    return login_as


@pytest.fixture(scope="session", autouse=True)
def _static_files_served_by_whitenoise():
    """pytest-django's live server puts Django's StaticFilesHandler in front of the app, which finds files by their
    source names only; with DEBUG off, pages link collectstatic's hashed names, which WhiteNoise (in the app's
    middleware) serves as it does in production. The live server gets the app as it is."""
    from django.contrib.staticfiles import handlers

    original = handlers.StaticFilesHandler
    handlers.StaticFilesHandler = lambda application: application
    yield
    handlers.StaticFilesHandler = original
