"""HTTP traffic, counted in memory per process: requests, 4xx, 5xx and a latency histogram per view.

The cost per request is a clock read, a dictionary look-up and a few integer
additions under an uncontended lock (bench/metrics_collect.py measures it: a
few microseconds). Nothing is written anywhere per request: the process's
reporter (apps.metrics.reporting) copies the cumulative totals every interval
and the one collector turns them into rates and percentiles across processes.
"""

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps.metrics import reporting
from apps.metrics.traffic import traffic

Handler = Callable[[HttpRequest], HttpResponse]
UNMATCHED = "unmatched"  # requests no URL pattern matched (404s for unknown paths)


def view_name(request: HttpRequest) -> str:
    """The URL pattern's name (namespaced, e.g. admin:index), the view's dotted path without one."""
    match = getattr(request, "resolver_match", None)
    return match.view_name if match is not None else UNMATCHED


class HttpMetricsMiddleware:
    """Counts every response of this process by view; starts the process's reporter on the first request.

    Sync-only like the project's other middleware, and placed next to them, so
    under ASGI it adds no switch between the event loop and a thread.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        reporting.serves_http()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        traffic.record(view_name(request), response.status_code, time.perf_counter() - started)
        reporting.ensure_started("web")
        return response
