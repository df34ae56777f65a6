"""`python manage.py check --deploy` is clean under production settings: DEBUG off, a real SECRET_KEY, hosts set,
and the security block of portal/settings.py left at its defaults (secure cookies, HSTS, SSL redirect).

Run in a subprocess with an environment built from scratch: the test environment (portal/testing.py) turns the
secure cookies and the redirect off for the test client, and a developer's .env turns DEBUG on; neither may leak
into what is checked here.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

BASE_DIR = Path(__file__).resolve().parents[2]


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("DJANGO_", "SECURE_", "SESSION_", "CSRF_", "FLOWGATE_", "DATABASE_", "CELERY_",
                                   "CACHE_", "ALLOWED_", "SECRET_", "DEBUG", "PYTEST"))}
    env.update({
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),  # 67 characters, as the README tells
        "ALLOWED_HOSTS": "flowgate.example.com",
        "FLOWGATE_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "FLOWGATE_EXTRA_SALESFORCE_HOSTS": "",  # what .env sets for the emulator stays out
        "DATABASE_URL": "postgres://flowgate@db.example.com:5432/flowgate",  # check opens no connection
        "CELERY_BROKER_URL": "redis://redis.example.com:6379/0",
        "CACHE_URL": "redis://redis.example.com:6379/1",
        "FLOWGATE_VAR_DIR": str(tmp_path),
        **overrides,
    })
    return env


def deploy_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    result = deploy_check(production_env(tmp_path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNING" not in result.stderr and "?: (" not in result.stderr


# Each of these turns one protection off: the check must then fail, so the clean run above means something.
WEAKENED = {
    "no SSL redirect": ({"SECURE_SSL_REDIRECT": "false"}, "security.W008"),
    "no HSTS": ({"SECURE_HSTS_SECONDS": "0"}, "security.W004"),
    "session cookie over http": ({"SESSION_COOKIE_SECURE": "false"}, "security.W012"),
    "CSRF cookie over http": ({"CSRF_COOKIE_SECURE": "false"}, "security.W016"),
    "short secret key": ({"SECRET_KEY": "too-short"}, "security.W009"),
    "DEBUG on": ({"DEBUG": "true"}, "security.W018"),
}


@pytest.mark.parametrize("overrides, warning", WEAKENED.values(), ids=WEAKENED.keys())
def test_check_deploy_fails_when_a_protection_is_off(tmp_path, overrides, warning):
    result = deploy_check(production_env(tmp_path, **overrides))

    assert result.returncode != 0
    assert warning in result.stderr


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = deploy_check(production_env(tmp_path, SECRET_KEY=""))

    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
