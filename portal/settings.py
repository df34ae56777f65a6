"""Flowgate settings: every knob is an environment variable (see the README's configuration table).

Defaults run everything embedded (SQLite, a filesystem broker, a database cache) so `make run` needs no
server; production points DATABASE_URL, CELERY_BROKER_URL and CACHE_URL at PostgreSQL and Redis.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("FLOWGATE_VAR_DIR", default=str(BASE_DIR / "var")))

VAR_DIR.mkdir(parents=True, exist_ok=True)
env = environ.Env()
# The real environment wins over .env, which `make run` writes with local keys.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Production refuses to start without it: set SECRET_KEY to a long random "
            "string, e.g. the output of: python -c \"import secrets; print(secrets.token_urlsafe(50))\""
        )
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "portal.errors.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "flows",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # /static/ straight from the app, before sessions and the database are touched (README: production).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # A view that cannot reach the database answers 503 with Retry-After, not 500 (see flows/middleware.py).
    "flows.middleware.DatabaseUnavailableMiddleware",
    # Console and admin queries planned for their own values, not as prepared generic plans (flows/plans.py).
    "flows.plans.CustomPlansMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker write at the same time: take the write lock up front and use WAL
    # so readers never block, instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;", "timeout": 20}
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Parameters sent apart from the SQL, and a statement run 5 times on a connection prepared, so PostgreSQL
        # stops parsing and planning the same few queries for every trigger. Turn off behind a pooler in
        # transaction mode that cannot keep prepared statements (PgBouncer before 1.21).
        if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
            # The console's and admin's queries are still planned for their values (flows/plans.py).
            DATABASES["default"].setdefault("OPTIONS", {}).update({"server_side_binding": True, "prepare_threshold": 5})

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Shared by every process (web, worker, command line): tokens and their single-flight locks live here.
CACHES = {"default": env.cache("CACHE_URL", default="dbcache://flowgate_cache")}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    CACHES["default"]["BACKEND"] = "flows.cache.RedisCache"  # the same, with its redis clients reused

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The login page refuses a user name after this many failed logins within the window, and an address after
# FLOWGATE_LOGIN_MAX_FAILURES_PER_ADDRESS (several people may share one office address); see portal/login.py.
FLOWGATE_LOGIN_MAX_FAILURES = env.int("FLOWGATE_LOGIN_MAX_FAILURES", default=5)
FLOWGATE_LOGIN_MAX_FAILURES_PER_ADDRESS = env.int("FLOWGATE_LOGIN_MAX_FAILURES_PER_ADDRESS", default=20)
FLOWGATE_LOGIN_WINDOW_SECONDS = env.int("FLOWGATE_LOGIN_WINDOW_SECONDS", default=900)
# How many proxies in front of the web server append to X-Forwarded-For: the client's address is the entry
# that many places from the right. 0 (the default) takes the connection's own address and ignores the header,
# which a client could otherwise fill with any address it likes.
FLOWGATE_TRUSTED_PROXIES = env.int("FLOWGATE_TRUSTED_PROXIES", default=0)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
# Dates and times in one format across the admin and the console (portal/formats/en/formats.py).
FORMAT_MODULE_PATH = ["portal.formats"]

STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(VAR_DIR / "static"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Without DEBUG, `collectstatic` writes hashed, compressed copies that WhiteNoise serves with a one-year
    # immutable cache; a page rendered before `collectstatic` ran fails loudly instead of linking missing files.
    # With DEBUG (make run), files are served from the apps' folders as they are edited.
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage" if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage",
    },
}

LOGIN_URL = "admin:login"

# --- Celery -----------------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.1,  # the default second would add up to a second to every trigger
    }
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # A request that enqueues must not hang on a broker that is down or frozen (kombu's defaults wait forever
    # on a socket that never answers). Publishing fails within seconds instead; the trigger row keeps an empty
    # enqueued_at and the sweep enqueues it once the broker is back: the row is the outbox.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "socket_connect_timeout": 2,
        # Above the 1 s server-side timeout of the worker's BRPOP, so a live but idle broker never times out.
        "socket_timeout": 2,
        # Reconnecting on first use of a channel (a publish after the connection broke): once, at once.
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.5,
        "interval_max": 0.5,
    }
# Bounds the total time spent reconnecting before a publish gives up (kombu's connect_timeout).
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# One quick retry of a failed publish: enough for a dropped connection, not a wait on a broker that is down.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}
from kombu import Queue  # noqa: E402  (kept with the Celery settings it serves)

# The sweep has a queue of its own, which every worker consumes beside the default one (kombu takes them in
# turn): on the default queue it would wait behind the whole backlog of dispatches, so a deep queue would hold
# back exactly what the sweep is for (claims of a lost worker, retries kept in the database, lost messages).
CELERY_TASK_QUEUES = (Queue("celery", routing_key="celery"), Queue("flowgate.sweep", routing_key="flowgate.sweep"))
CELERY_TASK_ROUTES = {"flows.sweep_triggers": {"queue": "flowgate.sweep"}}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Flowgate ---------------------------------------------------------------------------------------
FLOWGATE_ENCRYPTION_KEYS = env.list("FLOWGATE_ENCRYPTION_KEYS", default=[])
FLOWGATE_EXTRA_SALESFORCE_HOSTS = env.list("FLOWGATE_EXTRA_SALESFORCE_HOSTS", default=[])
FLOWGATE_RETRY_DELAYS = env.list("FLOWGATE_RETRY_DELAYS", cast=float, default=[10, 30, 90, 300, 900])
# Delays up to this many seconds ride on a broker countdown; longer ones wait in the database for the
# sweep, because a Redis broker re-delivers unacked messages after its visibility timeout (1 h).
FLOWGATE_MAX_COUNTDOWN = env.float("FLOWGATE_MAX_COUNTDOWN", default=300)
FLOWGATE_SWEEP_INTERVAL = env.float("FLOWGATE_SWEEP_INTERVAL", default=15)
# A queued trigger whose message has not reached a worker this long after it was due is enqueued again.
FLOWGATE_SWEEP_GRACE = env.float("FLOWGATE_SWEEP_GRACE", default=60)
FLOWGATE_HTTP_CONNECT_TIMEOUT = env.float("FLOWGATE_HTTP_CONNECT_TIMEOUT", default=5)
FLOWGATE_HTTP_READ_TIMEOUT = env.float("FLOWGATE_HTTP_READ_TIMEOUT", default=30)
# A token has no expiry in its response; Salesforce ends it after the session timeout (2 h idle by default).
# Renewing it a little earlier than that saves the 401-and-retry round trip.
FLOWGATE_TOKEN_CACHE_SECONDS = env.int("FLOWGATE_TOKEN_CACHE_SECONDS", default=3600)
# After REQUEST_LIMIT_EXCEEDED (the org's daily API limit), no call to that org for this long; its triggers
# wait without using a retry.
FLOWGATE_LIMIT_PAUSE_SECONDS = env.float("FLOWGATE_LIMIT_PAUSE_SECONDS", default=900)
# After REQUEST_LIMIT_EXCEEDED for too many long requests at once (ConcurrentPerOrgLongTxn), a trigger waits about
# this many seconds (x0.5 to x1.5) and goes again, without using a retry or pausing the org.
FLOWGATE_CONCURRENT_LIMIT_BACKOFF = env.float("FLOWGATE_CONCURRENT_LIMIT_BACKOFF", default=5)
# How long a dispatch waits for one of its org's concurrent-call slots before it is put back in the queue.
FLOWGATE_SLOT_WAIT = env.float("FLOWGATE_SLOT_WAIT", default=1.0)
FLOWGATE_EXCHANGE_BODY_LIMIT = env.int("FLOWGATE_EXCHANGE_BODY_LIMIT", default=16384)
# Exchanges older than this many days are deleted daily by the worker (flows.purge_exchanges); 0 keeps them.
FLOWGATE_EXCHANGE_RETENTION_DAYS = env.int("FLOWGATE_EXCHANGE_RETENTION_DAYS", default=90)
FLOWGATE_MAX_BODY_BYTES = env.int("FLOWGATE_MAX_BODY_BYTES", default=256 * 1024)  # API and webhook requests
FLOWGATE_DELIVERY_BODY_LIMIT = env.int("FLOWGATE_DELIVERY_BODY_LIMIT", default=65536)
SALESFORCE_EMULATOR_URL = env.str("SALESFORCE_EMULATOR_URL", default="http://127.0.0.1:8765")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # A refused page is one warning line (who, what), not a traceback of the PermissionDenied that said no.
    "filters": {"forbidden_without_traceback": {"()": "portal.logs.ForbiddenWithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # urllib3 logs full URLs and nothing else we need; keep it quiet.
        "urllib3": {"level": "WARNING"},
        "django.request": {"filters": ["forbidden_without_traceback"]},
    },
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_CONTENT_TYPE_NOSNIFF = True

from flows.crypto import validate_keys  # noqa: E402  (needs only the list above)

validate_keys(FLOWGATE_ENCRYPTION_KEYS)
