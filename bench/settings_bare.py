"""As bench.settings_full, less the portal's own middleware (metrics, proxy, request context, request log).

Django's security, session, CSRF, auth, message and clickjacking middleware and
WhiteNoise stay, so the two settings differ only by what the portal adds.
"""

from bench.settings_full import *  # noqa: F403
from bench.settings_full import MIDDLEWARE as FULL_MIDDLEWARE

PORTAL_MIDDLEWARE = {
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "apps.core.middleware.ProxyMiddleware",
    "apps.core.middleware.RequestContextMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
}
MIDDLEWARE = [name for name in FULL_MIDDLEWARE if name not in PORTAL_MIDDLEWARE]
