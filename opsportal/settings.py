"""opsportal settings: one module, every value read once from the environment.

With no environment set the portal runs embedded: SQLite in WAL mode under var/,
an in-process channel layer, local-memory cache, and the Celery worker and beat
inside `manage.py runportal` with a file-based broker. Setting DATABASE_URL and
REDIS_URL switches to PostgreSQL, channels-redis, the Redis cache and a Redis
broker. Every variable is listed in .env.example and documented in README.md.
"""

import contextlib
import logging
import os
import secrets
from pathlib import Path

from apps.core.logging import LEVELS, build_logging, configure_structlog
from opsportal import config

BASE_DIR = Path(__file__).resolve().parent.parent
if (BASE_DIR / ".env").is_file():
    config.env.read_env(BASE_DIR / ".env")

# Where the embedded mode keeps its state: database, broker files, secret key.
VAR_DIR = (BASE_DIR / config.string("OPSPORTAL_VAR_DIR", "var")).resolve()  # relative to the project
VAR_DIR.mkdir(parents=True, exist_ok=True)


# ---------------------------------------------------------------- core & security
def _generated_secret_key() -> str:
    """A key made once per installation and kept in var/ (mode 0600), for the embedded mode."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        # Written aside, then linked into place: concurrent first starts agree on one key.
        temporary = VAR_DIR / f".secret_key.{secrets.token_hex(8)}"
        temporary.touch(mode=0o600)
        temporary.write_text(secrets.token_urlsafe(50))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return path.read_text().strip()


# SECRET_KEY (or SECRET_KEY_FILE); production mode refuses to start without it (opsportal.E001).
SECRET_KEY_FROM_ENV = bool(config.string("SECRET_KEY"))
SECRET_KEY = config.string("SECRET_KEY") or _generated_secret_key()
DEBUG = config.boolean("DEBUG", False)
ALLOWED_HOSTS = config.words("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = config.words("CSRF_TRUSTED_ORIGINS", [])
# Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or CIDRs).
TRUSTED_PROXIES = config.networks("TRUSTED_PROXIES", [])
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # only reaches Django from TRUSTED_PROXIES
# Networks outbound HTTP (webhooks, Slack, health checks) may always reach, though
# internal (a corporate relay, say); anything else internal needs a per-destination flag.
OUTBOUND_INTERNAL_NETWORKS = config.networks("OUTBOUND_INTERNAL_NETWORKS", [])

# HTTPS=true when users reach the portal over HTTPS (directly or via a TLS proxy).
HTTPS = config.boolean("HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = config.integer("HSTS_SECONDS", 31536000, minimum=0) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = config.boolean("HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = config.boolean("HSTS_PRELOAD", True)
SECURE_REDIRECT_EXEMPT = [r"^metrics$"]  # Prometheus scrapes over plain HTTP inside the network
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = config.integer("SESSION_COOKIE_AGE", 12 * 3600, minimum=60)
X_FRAME_OPTIONS = "DENY"
# Request bodies: larger ones are refused (413 for hooks, 400 elsewhere) before they are read.
DATA_UPLOAD_MAX_MEMORY_SIZE = config.integer("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000

INSTALLED_APPS = [
    "opsportal.apps.OpsportalAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_prometheus",
    "django_structlog",
    "apps.core",
    "apps.audit",
    "apps.alerts",
    "apps.health",
    "apps.metrics",
    "apps.backups",
    "apps.dashboard",
    "apps.hooks",
    # django-ninja's Swagger UI files, served from static (no CDN).
    "ninja",
]

MIDDLEWARE = [
    # First: /healthz and /readyz are answered before the host check and the HTTPS redirect (see the module).
    "apps.health.middleware.ProbeMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "apps.core.middleware.RequestIdentityMiddleware",
    # Sync-only like its neighbours: counts requests per view into this process's memory (apps.metrics).
    "apps.metrics.middleware.HttpMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Sync-only and last, so under ASGI the whole chain runs in one thread.
    "apps.core.middleware.RequestContextMiddleware",
]

ROOT_URLCONF = "opsportal.urls"
WSGI_APPLICATION = "opsportal.wsgi.application"
ASGI_APPLICATION = "opsportal.asgi.application"

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

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = ["apps.audit.backends.ThrottledModelBackend"]
# Failed logins: this many per username or client IP within the window locks
# that username or IP out for the lockout time.
LOGIN_FAILURE_LIMIT = config.integer("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_FAILURE_WINDOW_MINUTES = config.integer("LOGIN_FAILURE_WINDOW_MINUTES", 15, minimum=1)
LOGIN_LOCKOUT_MINUTES = config.integer("LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
# Password for the `admin` account that runportal creates when no superuser exists;
# empty: a random one is generated and printed once.
ADMIN_PASSWORD = config.string("OPSPORTAL_ADMIN_PASSWORD")

LANGUAGE_CODE = "en-us"
TIME_ZONE = config.string("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
# Uploaded files (backed up by the default backup policy; not served by the portal).
MEDIA_ROOT = (BASE_DIR / config.string("MEDIA_ROOT", str(VAR_DIR / "media"))).resolve()
MEDIA_URL = "media/"
# Served by ServeStatic in front of Django (apps.core.static), straight from the
# app and project static folders: no collectstatic step, no CDN.


# ---------------------------------------------------------------- database
# DATABASE_URL: postgres://user:pass@host:port/name, or empty for SQLite under var/.
DATABASES = {"default": config.database("DATABASE_URL", VAR_DIR / "opsportal.sqlite3")}
DB_CONNECTION_TIMEOUT = config.integer("DB_CONNECTION_TIMEOUT", 5, minimum=1, maximum=300)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # IMMEDIATE takes the write lock at BEGIN, so concurrent writers wait
        # (busy_timeout) instead of failing on a lock upgrade.
        "transaction_mode": "IMMEDIATE",
        # Seconds a writer waits for the lock. SQLite's busy handler is not fair,
        # so under many writers one can wait far longer than the average.
        "timeout": max(DB_CONNECTION_TIMEOUT, 30),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    }
else:
    # A pool per process (psycopg_pool); DB_POOL_MAX_CONNECTIONS=0 turns it off in
    # favour of persistent connections. Either way CONN_HEALTH_CHECKS checks a
    # connection before reuse, so the portal survives a PostgreSQL restart.
    DB_POOL_MIN_CONNECTIONS = config.integer("DB_POOL_MIN_CONNECTIONS", 1, minimum=0)
    DB_POOL_MAX_CONNECTIONS = config.integer("DB_POOL_MAX_CONNECTIONS", 10, minimum=0)
    if 0 < DB_POOL_MAX_CONNECTIONS < DB_POOL_MIN_CONNECTIONS:
        config.fail("DB_POOL_MAX_CONNECTIONS", DB_POOL_MAX_CONNECTIONS, "at least DB_POOL_MIN_CONNECTIONS")
    options: dict = {"connect_timeout": DB_CONNECTION_TIMEOUT, "application_name": "opsportal"}
    if DB_POOL_MAX_CONNECTIONS:
        options["pool"] = {
            "min_size": DB_POOL_MIN_CONNECTIONS,
            "max_size": DB_POOL_MAX_CONNECTIONS,
            # Seconds a request waits for a connection of the pool before it fails (README: DB_CONNECTION_TIMEOUT).
            # Short on purpose: with PostgreSQL down every request waits this long for its 503, holding a
            # gunicorn thread that /healthz also needs.
            "timeout": DB_CONNECTION_TIMEOUT,
        }
    DATABASES["default"].update(
        OPTIONS=options,
        CONN_MAX_AGE=0 if DB_POOL_MAX_CONNECTIONS else config.integer("DB_CONN_MAX_AGE", 60, minimum=0),
        CONN_HEALTH_CHECKS=True,
    )


# ---------------------------------------------------------------- redis: cache, channel layer
# REDIS_URL: redis://host:6379/0; empty keeps cache and channel layer in-process.
REDIS_URL = config.url("REDIS_URL", "", ("redis", "rediss", "unix"))
REDIS_MAX_CONNECTIONS = config.integer("REDIS_MAX_CONNECTIONS", 50, minimum=1)
REDIS_TIMEOUT = 2  # seconds; a dead Redis fails fast instead of hanging a request
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "opsportal",
            "OPTIONS": {
                "max_connections": REDIS_MAX_CONNECTIONS,
                "socket_timeout": REDIS_TIMEOUT,
                "socket_connect_timeout": REDIS_TIMEOUT,
            },
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "opsportal:asgi", "capacity": 1000, "expiry": 30},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "opsportal"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}}


# ---------------------------------------------------------------- celery
# With REDIS_URL, Redis is the broker and result store and `celery -A opsportal
# worker` / `beat` run as their own processes. Without it, a file-based broker
# under var/ lets runportal's in-process worker take tasks from any process
# (a request, a manage.py command) on the same machine.
CELERY_TASK_ACKS_LATE = True  # a task is acknowledged after it ran...
CELERY_TASK_REJECT_ON_WORKER_LOST = True  # ...and redelivered when its worker was killed
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 600
CELERY_TASK_SOFT_TIME_LIMIT = 540
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_REDIRECT_STDOUTS = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing never hangs a request on a dead broker: two quick retries, then an error.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_TIMEOUT
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "scheduler-heartbeat": {"task": "apps.core.tasks.scheduler_heartbeat", "schedule": 30.0},
    "audit-seal": {"task": "apps.audit.tasks.audit_seal_task", "schedule": 10.0},
}
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Longer than any countdown or ETA the portal uses (escalations are
        # scheduled in the database, not as broker countdowns).
        "visibility_timeout": 6 * 3600,
        "socket_timeout": REDIS_TIMEOUT,
        "socket_connect_timeout": REDIS_TIMEOUT,
        "max_connections": REDIS_MAX_CONNECTIONS,
    }
    CELERY_REDIS_MAX_CONNECTIONS = REDIS_MAX_CONNECTIONS
    CELERY_REDIS_SOCKET_TIMEOUT = REDIS_TIMEOUT
    CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = REDIS_TIMEOUT
else:
    _broker_dir = VAR_DIR / "broker"
    for _folder in ("queue", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://localhost/"
    CELERY_BROKER_TRANSPORT = "apps.core.broker:Transport"  # messages appear whole (see the module)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "polling_interval": 0.1,
    }
    CELERY_RESULT_BACKEND = f"file://{VAR_DIR / 'results'}"
    (VAR_DIR / "results").mkdir(exist_ok=True)
DJANGO_STRUCTLOG_CELERY_ENABLED = True


# ---------------------------------------------------------------- logging
LOG_LEVEL = config.choice("LOG_LEVEL", "INFO", LEVELS)
LOG_FORMAT = config.choice("LOG_FORMAT", "console", ["json", "console"])
LOG_CONSOLE = config.boolean("LOG_CONSOLE", True)
LOG_FILE = config.string("LOG_FILE")  # empty: no file
LOG_FILE_SIZE_MB = config.integer("LOG_FILE_SIZE_MB", 50, minimum=1)
LOG_BACKUP_COUNT = config.integer("LOG_BACKUP_COUNT", 5, minimum=0)
LOG_MAX_MESSAGE_LENGTH = config.integer("LOG_MAX_MESSAGE_LENGTH", 8192, minimum=64)
LOGGING = build_logging(
    level=LOG_LEVEL,
    fmt=LOG_FORMAT,
    console=LOG_CONSOLE,
    file=LOG_FILE,
    file_size_mb=LOG_FILE_SIZE_MB,
    backup_count=LOG_BACKUP_COUNT,
    component_levels={
        component: config.choice(f"LOG_{component.upper()}_LEVEL", LOG_LEVEL, LEVELS)
        for component in ("api", "database", "auth", "monitoring")
    },
    max_message_length=LOG_MAX_MESSAGE_LENGTH,
)
configure_structlog()
DJANGO_STRUCTLOG_TRUST_UPSTREAM_REQUEST_ID = True  # validated by RequestIdentityMiddleware first
DJANGO_STRUCTLOG_IP_LOGGING_ENABLED = False  # RequestIdentityMiddleware binds the proxy-aware client IP
# One line per request, request_finished (with its duration); request_started
# too when the api component logs at DEBUG.
DJANGO_STRUCTLOG_STATUS_START_LOG_LEVEL = logging.DEBUG


# ---------------------------------------------------------------- metrics
PROMETHEUS_ENABLED = config.boolean("PROMETHEUS_ENABLED", True)
# /metrics answers a bearer METRICS_TOKEN, or a client in METRICS_ALLOWED_IPS.
METRICS_TOKEN = config.string("METRICS_TOKEN")
METRICS_ALLOWED_IPS = config.networks("METRICS_ALLOWED_IPS", ["127.0.0.1/32", "::1/128"])
PROMETHEUS_EXPORT_MIGRATIONS = False
MONITORING_INTERVAL_SECONDS = config.integer("MONITORING_INTERVAL_SECONDS", 5, minimum=1, maximum=3600)
# The time series (apps.metrics): raw samples for hours, 1-minute rollups for days, 1-hour and 1-day
# rollups for days; the hourly prune task deletes what is older, in batches.
METRICS_RAW_RETENTION_HOURS = config.integer("METRICS_RAW_RETENTION_HOURS", 24, minimum=1, maximum=24 * 365)
METRICS_MINUTE_RETENTION_DAYS = config.integer("METRICS_MINUTE_RETENTION_DAYS", 30, minimum=1, maximum=3650)
METRICS_HOUR_RETENTION_DAYS = config.integer("METRICS_HOUR_RETENTION_DAYS", 365, minimum=1, maximum=36500)
# Filesystems whose use is collected as system.disk.percent{path=...}, besides the database's.
METRICS_DISK_PATHS = config.words("METRICS_DISK_PATHS", [])
# Each process reports its readings and HTTP traffic from a thread of its own; the test suite
# turns it off and calls the reporters itself.
METRICS_REPORT_IN_BACKGROUND = True
# One collector tick per interval in the deployment (claimed, so a duplicate does nothing); a tick
# still queued after an interval is stale and dropped (expires).
CELERY_BEAT_SCHEDULE["metrics-collect"] = {
    "task": "apps.metrics.tasks.metrics_collect_task",
    "schedule": float(MONITORING_INTERVAL_SECONDS),
    "options": {"expires": float(MONITORING_INTERVAL_SECONDS)},
}
CELERY_BEAT_SCHEDULE["metrics-prune"] = {"task": "apps.metrics.tasks.metrics_prune_task", "schedule": 3600.0}


# ---------------------------------------------------------------- backups (apps.backups)
# Where the "local" storage keeps backups (a directory; relative paths are under the project).
BACKUP_DIR = (BASE_DIR / config.string("BACKUP_DIR", str(VAR_DIR / "backups"))).resolve()
BACKUP_STORAGES: dict[str, dict] = {"local": {"kind": "local", "path": BACKUP_DIR}}
# S3-compatible object storage, offered to policies as "s3" when a bucket is named.
BACKUP_S3_BUCKET = config.string("BACKUP_S3_BUCKET")
if BACKUP_S3_BUCKET:
    BACKUP_STORAGES["s3"] = {
        "kind": "s3",
        "bucket": BACKUP_S3_BUCKET,
        "prefix": config.string("BACKUP_S3_PREFIX"),
        "endpoint_url": config.string("BACKUP_S3_ENDPOINT_URL") or None,
        "region": config.string("BACKUP_S3_REGION", "us-east-1"),
        "access_key": config.string("BACKUP_S3_ACCESS_KEY_ID"),
        "secret_key": config.string("BACKUP_S3_SECRET_ACCESS_KEY"),  # a secret: never logged
    }
# The age identity (private key) file that restores and drills of encrypted backups read. The
# portal needs it only to restore: keep it off the server and pass --identity when you can.
BACKUP_IDENTITY_FILE = config.string("BACKUP_IDENTITY_FILE")
# A run holds its policy's lock this long, renewed while it makes progress; a killed run's lock expires.
BACKUP_LOCK_SECONDS = config.integer("BACKUP_LOCK_SECONDS", 300, minimum=30)
# How often the scheduler looks for due backups, verifies and drills, and checks freshness.
BACKUP_TICK_SECONDS = config.integer("BACKUP_TICK_SECONDS", 60, minimum=1)
BACKUP_PG_DUMP = config.string("BACKUP_PG_DUMP", "pg_dump")
BACKUP_PG_RESTORE = config.string("BACKUP_PG_RESTORE", "pg_restore")
# Limits a files restore holds, whatever the archive says.
BACKUP_RESTORE_MAX_FILES = config.integer("BACKUP_RESTORE_MAX_FILES", 1_000_000, minimum=1)
BACKUP_RESTORE_MAX_BYTES = config.integer("BACKUP_RESTORE_MAX_BYTES", 1 << 40, minimum=1)
# Decrypted, verified copies for restores and drills are written here (and removed after).
BACKUP_SCRATCH_DIR = (BASE_DIR / config.string("BACKUP_SCRATCH_DIR", str(VAR_DIR / "tmp"))).resolve()
# Made here (the folder itself, never its parents: a path under an unmounted volume stays missing,
# and the disk health check says so) so that a fresh install's health and first backup find them.
for _folder in (BACKUP_DIR, BACKUP_SCRATCH_DIR):
    with contextlib.suppress(OSError):
        _folder.mkdir(exist_ok=True)
CELERY_BEAT_SCHEDULE["backups-tick"] = {
    "task": "apps.backups.tasks.backups_tick",
    "schedule": float(BACKUP_TICK_SECONDS),
    "options": {"expires": float(BACKUP_TICK_SECONDS)},
}


# ---------------------------------------------------------------- live dashboards (apps.dashboard)
# Frames waiting for one dashboard socket: past that the oldest give way (counted as dropped; the
# page sees the seq gap and resyncs). 256 frames is 25 s of a 10-per-second topic.
DASHBOARD_QUEUE_FRAMES = config.integer("DASHBOARD_QUEUE_FRAMES", 256, minimum=8, maximum=100_000)
# A socket whose client has taken nothing for this long is closed with 4408 (too slow).
DASHBOARD_STALL_SECONDS = config.number("DASHBOARD_STALL_SECONDS", 10.0, minimum=1.0)
# Every socket gets a heartbeat frame this often, so a page can tell a quiet topic from a dead link.
DASHBOARD_HEARTBEAT_SECONDS = config.number("DASHBOARD_HEARTBEAT_SECONDS", 15.0, minimum=1.0)


# ---------------------------------------------------------------- audit & alerts
AUDIT_LOG_RETENTION_DAYS = config.integer("AUDIT_LOG_RETENTION_DAYS", 90, minimum=1)
# Each process seals the audit chain in a thread of its own, woken by commits
# (apps.audit.sealer); the test suite seals inline, where it can wait for it.
AUDIT_SEAL_IN_BACKGROUND = True
# The portal's address as people reach it, for links in notifications (empty: relative links).
PORTAL_URL = config.url("PORTAL_URL", "", ("https", "http")).rstrip("/")
# The scheduler's beat for group waits, escalations, reminders and the delivery sweep.
ALERTS_TICK_SECONDS = config.integer("ALERTS_TICK_SECONDS", 5, minimum=1, maximum=60)
# A notification still undelivered after this long is dead: shown in the admin, replayable, reported.
ALERTS_GIVE_UP_MINUTES = config.integer("ALERTS_GIVE_UP_MINUTES", 60, minimum=1)
# Delivery (apps.alerts.delivery): a receiver that has not answered within the timeout is cut off
# and tried again later; a worker holds a notification it is sending for the lease, after which
# another worker may take it over (so the lease must outlast a send).
ALERTS_DELIVERY_TIMEOUT_SECONDS = config.integer("ALERTS_DELIVERY_TIMEOUT_SECONDS", 10, minimum=1, maximum=120)
ALERTS_LEASE_SECONDS = config.integer("ALERTS_LEASE_SECONDS", 60, minimum=10)
if ALERTS_LEASE_SECONDS < 2 * ALERTS_DELIVERY_TIMEOUT_SECONDS:
    config.fail("ALERTS_LEASE_SECONDS", ALERTS_LEASE_SECONDS, "at least twice ALERTS_DELIVERY_TIMEOUT_SECONDS")
# Retries wait a random time under a ceiling that doubles from the first to the max.
ALERTS_RETRY_FIRST_SECONDS = config.integer("ALERTS_RETRY_FIRST_SECONDS", 5, minimum=1, maximum=3600)
ALERTS_RETRY_MAX_SECONDS = config.integer("ALERTS_RETRY_MAX_SECONDS", 600, minimum=ALERTS_RETRY_FIRST_SECONDS)
CELERY_BEAT_SCHEDULE["alerts-tick"] = {"task": "apps.alerts.tasks.alerts_tick", "schedule": float(ALERTS_TICK_SECONDS)}
# Metric alert rules (apps.metrics.rules) are evaluated this often; a rule's `for` counts in these steps.
ALERTS_EVAL_INTERVAL_SECONDS = config.integer("ALERTS_EVAL_INTERVAL_SECONDS", 15, minimum=1, maximum=3600)
CELERY_BEAT_SCHEDULE["metrics-rules"] = {
    "task": "apps.metrics.rule_tasks.metrics_rules_task",
    "schedule": float(ALERTS_EVAL_INTERVAL_SECONDS),
}

# Without EMAIL_HOST, mail is written to the log instead of sent.
EMAIL_HOST = config.string("EMAIL_HOST")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = config.integer("EMAIL_PORT", 587, minimum=1, maximum=65535)
EMAIL_HOST_USER = config.string("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = config.string("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = config.boolean("EMAIL_USE_TLS", True)
EMAIL_USE_SSL = config.boolean("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    config.fail("EMAIL_USE_SSL", "true", "false while EMAIL_USE_TLS is true (pick one)")
EMAIL_TIMEOUT = config.integer("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = config.string("DEFAULT_FROM_EMAIL", "opsportal <opsportal@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL


# ---------------------------------------------------------------- health
# The scheduled run of every check (apps.health): results stored, alerts fired after a check's `for`.
HEALTH_INTERVAL_SECONDS = config.integer("HEALTH_INTERVAL_SECONDS", 30, minimum=5, maximum=3600)
HEALTH_HISTORY_DAYS = config.integer("HEALTH_HISTORY_DAYS", 7, minimum=1, maximum=3650)
# A check that has not answered by then is critical ("timed out after 5 s"); the others are not held up.
HEALTH_CHECK_TIMEOUT_SECONDS = config.integer("HEALTH_CHECK_TIMEOUT_SECONDS", 5, minimum=1, maximum=120)
# How long a check must stay bad before it fires an alert (per target in the admin).
HEALTH_FOR_SECONDS = config.integer("HEALTH_FOR_SECONDS", 60, minimum=0, maximum=86400)
# Thresholds (warning, critical). Latency: database, cache, Redis and targets, in milliseconds.
HEALTH_LATENCY_WARNING_MS = config.integer("HEALTH_LATENCY_WARNING_MS", 1000, minimum=1)
HEALTH_LATENCY_CRITICAL_MS = config.integer("HEALTH_LATENCY_CRITICAL_MS", 3000, minimum=HEALTH_LATENCY_WARNING_MS)
# Disk space used, for each path (default: the database's and the backups' folders).
HEALTH_DISK_PATHS = config.words("HEALTH_DISK_PATHS", [])
HEALTH_DISK_WARNING_PERCENT = config.integer("HEALTH_DISK_WARNING_PERCENT", 80, minimum=1, maximum=100)
HEALTH_DISK_CRITICAL_PERCENT = config.integer(
    "HEALTH_DISK_CRITICAL_PERCENT", 90, minimum=HEALTH_DISK_WARNING_PERCENT, maximum=100
)
HEALTH_MEMORY_WARNING_PERCENT = config.integer("HEALTH_MEMORY_WARNING_PERCENT", 80, minimum=1, maximum=100)
HEALTH_MEMORY_CRITICAL_PERCENT = config.integer(
    "HEALTH_MEMORY_CRITICAL_PERCENT", 90, minimum=HEALTH_MEMORY_WARNING_PERCENT, maximum=100
)
# Connections in use: PostgreSQL's vs max_connections, the Redis pool's vs REDIS_MAX_CONNECTIONS,
# the process's open files vs its limit.
HEALTH_CONNECTIONS_WARNING_PERCENT = config.integer("HEALTH_CONNECTIONS_WARNING_PERCENT", 80, minimum=1, maximum=100)
HEALTH_CONNECTIONS_CRITICAL_PERCENT = config.integer(
    "HEALTH_CONNECTIONS_CRITICAL_PERCENT", 90, minimum=HEALTH_CONNECTIONS_WARNING_PERCENT, maximum=100
)
# 5-minute load average per CPU.
HEALTH_LOAD_WARNING_PER_CPU = config.number("HEALTH_LOAD_WARNING_PER_CPU", 2.0)
HEALTH_LOAD_CRITICAL_PER_CPU = config.number("HEALTH_LOAD_CRITICAL_PER_CPU", 4.0, minimum=HEALTH_LOAD_WARNING_PER_CPU)
# The portal process's resident memory, in MiB.
HEALTH_PROCESS_RSS_WARNING_MB = config.integer("HEALTH_PROCESS_RSS_WARNING_MB", 1024, minimum=1)
HEALTH_PROCESS_RSS_CRITICAL_MB = config.integer(
    "HEALTH_PROCESS_RSS_CRITICAL_MB", 2048, minimum=HEALTH_PROCESS_RSS_WARNING_MB
)
# Tasks waiting in the Celery queue.
HEALTH_QUEUE_WARNING = config.integer("HEALTH_QUEUE_WARNING", 1000, minimum=1)
HEALTH_QUEUE_CRITICAL = config.integer("HEALTH_QUEUE_CRITICAL", 10000, minimum=HEALTH_QUEUE_WARNING)
# HTTPS targets: days before the certificate expires.
HEALTH_CERT_WARNING_DAYS = config.integer("HEALTH_CERT_WARNING_DAYS", 14, minimum=0)
HEALTH_CERT_CRITICAL_DAYS = config.integer("HEALTH_CERT_CRITICAL_DAYS", 7, minimum=0, maximum=HEALTH_CERT_WARNING_DAYS)
CELERY_BEAT_SCHEDULE["health-run"] = {
    "task": "apps.health.tasks.health_run_task",
    "schedule": float(HEALTH_INTERVAL_SECONDS),
}

# ---------------------------------------------------------------- health endpoints
# /health/ answers `Authorization: Bearer HEALTH_TOKEN` (a secret, never logged), or a staff
# session allowed to view check states; empty: sessions only.
HEALTH_TOKEN = config.string("HEALTH_TOKEN")
# /readyz answers within this many seconds, even when a dependency hangs.
HEALTH_READY_TIMEOUT_SECONDS = config.number("HEALTH_READY_TIMEOUT_SECONDS", 2.0, minimum=0.1)
# /health/ and the overview read the stored results at most this often per process (0: every request).
HEALTH_REPORT_CACHE_SECONDS = config.number("HEALTH_REPORT_CACHE_SECONDS", 1.0, minimum=0.0)

# ---------------------------------------------------------------- API and hooks (apps.hooks)
# Requests a minute per API token (or per staff session's user) before 429 + Retry-After; 0: no limit.
API_RATE_LIMIT_PER_MINUTE = config.integer("API_RATE_LIMIT_PER_MINUTE", 1200, minimum=0)
# Seconds a web process may reuse an API token it looked up, sparing a query a request; 0: look it up every
# time. Any change to a token or a user (a revocation, a deactivation) ends the reuse in every process at its
# commit, through an epoch in the shared cache: so on by default with Redis, off without it (the embedded
# local-memory cache is not shared with `manage.py api token revoke`).
API_TOKEN_CACHE_SECONDS = config.integer("API_TOKEN_CACHE_SECONDS", 60 if REDIS_URL else 0, minimum=0, maximum=300)
# Seconds a web process may send again a page of the alerts list it wrote out, while no alert changed; 0:
# query every time. Any committed change of an alert ends the reuse in every process before its writer
# answers, through an epoch in the shared cache; the age limit only bounds a change whose epoch never reached
# Redis. On by default with Redis, off without it (as above).
API_LIST_CACHE_SECONDS = config.integer("API_LIST_CACHE_SECONDS", 5 if REDIS_URL else 0, minimum=0, maximum=60)
# Inbound hooks: bodies larger than this are refused with 413 before they are read.
HOOKS_MAX_BODY_BYTES = config.integer("HOOKS_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
# Standard Webhooks: how far a webhook-timestamp may be from now, either way (replays are refused
# for at least twice this long).
HOOKS_TIMESTAMP_TOLERANCE_SECONDS = config.integer("HOOKS_TIMESTAMP_TOLERANCE_SECONDS", 300, minimum=1)
# How often the scheduler looks for late heartbeats (and prunes old hook deliveries).
HOOKS_TICK_SECONDS = config.integer("HOOKS_TICK_SECONDS", 15, minimum=1, maximum=300)
CELERY_BEAT_SCHEDULE["hooks-tick"] = {
    "task": "apps.hooks.tasks.hooks_tick",
    "schedule": float(HOOKS_TICK_SECONDS),
    "options": {"expires": float(HOOKS_TICK_SECONDS)},
}
