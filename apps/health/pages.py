"""What /health/ and the admin's overview show: the checks' report, and the overview page that renders it.

One report shape for both: {"status": overall, "fresh": bool, "checks": [...]},
each check as CheckState.as_dict() (stored: with since and alerted) or
Result.as_dict() (fresh: run now, not stored).
"""

import time
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.dateparse import parse_datetime

from apps.health import services

VIEW_PERMISSION = "health.view_checkstate"
HISTORY_PERMISSION = "health.view_checkresult"
YES, NO = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


class BadFreshError(ValueError):
    """?fresh= was neither yes nor no."""

    def __init__(self) -> None:
        super().__init__("fresh must be 1 (run the checks now) or 0")


def wants_fresh(request: HttpRequest) -> bool:
    """?fresh=1 (true, yes, on) runs the checks now; absent, empty or 0 serves the stored results."""
    value = request.GET.get("fresh", "").strip().lower()
    if value not in YES | NO:
        raise BadFreshError
    return value in YES


_stored: dict[str, tuple[float, dict[str, Any]]] = {}  # "report": (when it was read, monotonic; the report)


def report(*, fresh: bool) -> dict[str, Any]:
    """The stored state of every check, or with fresh every check run now (nothing is stored).

    The stored state is read at most once per HEALTH_REPORT_CACHE_SECONDS in each
    process and shared by the requests in between: however hard /health/ and the
    overview are polled, each process asks the database about once a second.
    """
    if fresh:
        return _report(services.run_checks(), fresh=True)
    now = time.monotonic()
    read_at, found = _stored.get("report", (0.0, None))
    if found is None or now - read_at >= settings.HEALTH_REPORT_CACHE_SECONDS:
        found = _report(services.latest(), fresh=False)
        _stored["report"] = (now, found)  # a race at expiry costs a second read, nothing worse
    return found


def _report(found: list, *, fresh: bool) -> dict[str, Any]:
    return {
        "status": str(services.overall(item.status for item in found)),
        "fresh": fresh,
        "checks": [item.as_dict() for item in found],
    }


def overview_page(request: HttpRequest, found: dict[str, Any]) -> TemplateResponse:
    """The overview inside the admin: a tile per check, coloured by status, refreshed from /health/ by a script."""
    history = reverse("admin:health_checkresult_changelist")
    can_see_history = request.user.has_perm(HISTORY_PERMISSION)
    tiles = [
        {
            **check,
            "checked_at": parse_datetime(check["checked_at"]),
            "since": parse_datetime(check["since"]) if "since" in check else None,
            "history_url": f"{history}?{urlencode({'name': check['name']})}" if can_see_history else "",
        }
        for check in found["checks"]
    ]
    context = {
        **admin.site.each_context(request),
        "title": "Health overview",
        "status": found["status"],
        "fresh": found["fresh"],
        "tiles": tiles,
        "data_url": reverse("health"),
        # Results change once per scheduled run: polling a few times per run keeps the page within seconds of it.
        "refresh_seconds": max(5, settings.HEALTH_INTERVAL_SECONDS // 3),
        "interval_seconds": settings.HEALTH_INTERVAL_SECONDS,
    }
    return TemplateResponse(request, "admin/health/overview.html", context)
