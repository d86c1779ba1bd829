"""As bench.settings_full, less the portal's own middleware (probes, metrics, request identity and context, log).

Django's security, session, CSRF, auth, message and clickjacking middleware and
ServeStatic stay. A no-op sync-only middleware takes the place of
RequestContextMiddleware at the end, so that under ASGI Django runs the chain in
one thread exactly as in the full stack: the two differ only by the portal's work.
"""

from django.http import HttpRequest, HttpResponse

from bench.settings_full import *  # noqa: F403
from bench.settings_full import MIDDLEWARE as FULL_MIDDLEWARE

PORTAL_MIDDLEWARE = {
    "apps.health.middleware.ProbeMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "apps.core.middleware.RequestIdentityMiddleware",
    "apps.metrics.middleware.HttpMetricsMiddleware",
    "apps.core.middleware.RequestContextMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
}


class SyncBoundary:
    """Does nothing; being sync-only, it keeps the middleware chain in one thread."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)


MIDDLEWARE = [name for name in FULL_MIDDLEWARE if name not in PORTAL_MIDDLEWARE] + ["bench.settings_bare.SyncBoundary"]
