"""Loaded by pytest before Django (`-p portal.testing` in pyproject.toml): the test environment's defaults.

Tests talk to real services: PostgreSQL and Redis on loopback (.ci/run starts them). Any variable already
set in the environment wins, so `DATABASE_URL=... make test` points the suite elsewhere.
"""

import os
import tempfile

TEST_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "test-secret-key-not-for-production",
    "ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
    "SECURE_SSL_REDIRECT": "false",
    "SESSION_COOKIE_SECURE": "false",
    "CSRF_COOKIE_SECURE": "false",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/flowgate",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/14",
    "CACHE_URL": "redis://127.0.0.1:6379/15",
    # Two keys: the newest encrypts, both decrypt (rotation is exercised by the tests).
    "FLOWGATE_ENCRYPTION_KEYS": "pB4sNQ6qzwhsXnUlhK8YdhoTTbXQyBdUn4PSOnhGLkY=,Qm3bQd9v3yKJq7eG0oY4v0s2W1mZ8xq9jv3kzY0Xn1E=",
    "FLOWGATE_EXTRA_SALESFORCE_HOSTS": "127.0.0.1",
    "FLOWGATE_RETRY_DELAYS": "0.2,0.4,0.8",
    "FLOWGATE_VAR_DIR": os.path.join(tempfile.gettempdir(), "flowgate-test-var"),
    "LOG_LEVEL": "INFO",
    # Connections close after each task, so a worker thread never holds the test database open.
    "DATABASE_CONN_MAX_AGE": "0",
}

for name, value in TEST_ENV.items():
    os.environ.setdefault(name, value)
