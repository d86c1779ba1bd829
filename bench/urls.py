"""The portal's URLs plus bare views for the benchmarks' baselines.

GET /bench/trivial answers {"ok": true}. GET /bench/healthz and /bench/health answer
the very JSON of /healthz and of /health/ (the stored results, read once and then
kept in memory) from a plain view behind the portal's whole middleware stack:
what any view costs, with nothing of the health endpoints' own work.
POST /bench/events reads the body and answers {"ok": true}, CSRF-exempt as the
hooks are: the baseline of a signed event's delivery (bench/hooks_ingest.py).
"""

import functools
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from apps.health import pages


@require_GET
def trivial(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@functools.cache
def stored_report() -> dict[str, Any]:
    return pages.report(fresh=False)


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse(stored_report())


@csrf_exempt
@require_POST
def events(request: HttpRequest) -> JsonResponse:
    request.body  # noqa: B018 - read as the hook reads it, and nothing else
    return JsonResponse({"ok": True})


urlpatterns = [
    path("bench/trivial", trivial),
    path("bench/healthz", healthz),
    path("bench/health", health),
    path("bench/events", events),
    path("", include("opsportal.urls")),
]
