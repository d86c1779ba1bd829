"""bench.settings_full without django-structlog's request middleware: what the request log line costs."""

from bench.settings_full import *  # noqa: F403
from bench.settings_full import MIDDLEWARE as FULL_MIDDLEWARE

MIDDLEWARE = [name for name in FULL_MIDDLEWARE if not name.startswith("django_structlog.")]
