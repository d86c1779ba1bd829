"""The dashboard's HTTP endpoints: a chart's history, and acknowledging an alert from the page.

Both answer JSON, with a 4xx and {"error": text} for what the caller got wrong,
so the page's script can show the reason.
"""

from datetime import timedelta
from http import HTTPStatus

from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from apps.alerts import render, services
from apps.alerts.models import Alert
from apps.dashboard.pages import ACKNOWLEDGE_PERMISSION, RANGES, SERIES_PERMISSION
from apps.metrics.queries import series_range

MAX_NAMES = 20  # a page's charts name about ten; more is a mistake or a scraper


def error(message: str, status: HTTPStatus) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@require_GET
def series(request: HttpRequest) -> JsonResponse:
    """?names=<series>&names=...&range=15m|1h|24h|7d|30d: the points of each series up to now (series_range)."""
    if not request.user.has_perm(SERIES_PERMISSION):
        return error("you may not view metrics (metrics.view_series)", HTTPStatus.FORBIDDEN)
    # Repeated, not comma-separated: a series name's labels may contain commas.
    names = [name for name in request.GET.getlist("names") if name]
    chosen = request.GET.get("range", "")
    if chosen not in RANGES:
        return error(f"range must be one of {', '.join(RANGES)} (got {chosen[:20]!r})", HTTPStatus.BAD_REQUEST)
    if not names:
        return error("names is required: one or more series names (?names=a&names=b)", HTTPStatus.BAD_REQUEST)
    if len(names) > MAX_NAMES:
        return error(f"at most {MAX_NAMES} names per request (got {len(names)})", HTTPStatus.BAD_REQUEST)
    end = timezone.now()
    start = end - timedelta(seconds=RANGES[chosen])
    found = series_range(names, start, end)
    return JsonResponse({"range": chosen, "start": start.timestamp(), "end": end.timestamp(), **found})


@require_POST
def acknowledge(request: HttpRequest, pk: int) -> JsonResponse:
    """Acknowledge a firing alert as the logged-in user (the service audits it); 409 if it is not firing."""
    if not request.user.has_perm(ACKNOWLEDGE_PERMISSION):
        return error("you may not acknowledge alerts (alerts.change_alert)", HTTPStatus.FORBIDDEN)
    alert = get_object_or_404(Alert, pk=pk)
    if not services.alert_acknowledge(alert, actor=request.user, comment="from the live dashboard"):
        return error("the alert is not firing (already acknowledged or resolved)", HTTPStatus.CONFLICT)
    alert.refresh_from_db()
    return JsonResponse({"alert": render.describe(alert)})
