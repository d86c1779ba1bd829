"""/admin/dashboard/: what the live page shows, and the page itself.

The page is a shell: its tiles, charts, health checks, alerts and audit tail are
filled by static/dashboard/dashboard.js from the WebSocket's snapshots and
frames, and its charts' history from /admin/dashboard/series. What this module
decides is which series the page shows and which parts a user may see.
"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse

from apps.dashboard.access import TOPIC_PERMISSIONS

# One tile per headline series (names from the metrics contract); warn and crit colour the tile.
TILES = [
    {"name": "system.cpu.percent", "title": "CPU", "unit": "%", "warn": 80, "crit": 95},
    {"name": "system.memory.percent", "title": "Memory", "unit": "%", "warn": 80, "crit": 90},
    {"name": "system.disk.percent", "title": "Disk", "unit": "%", "warn": 80, "crit": 90},
    {"name": "http.requests.per_second", "title": "Requests", "unit": "/s"},
    {"name": "http.5xx.percent", "title": "Errors (5xx)", "unit": "%", "warn": 1, "crit": 5},
    {"name": "http.latency.p95.ms", "title": "p95 latency", "unit": "ms", "warn": 500, "crit": 1000},
    {"name": "celery.queue.depth", "title": "Queue depth", "unit": "", "warn": 100, "crit": 1000},
    {"name": "dashboard.clients", "title": "Clients", "unit": ""},
]
CHARTS = [
    {
        "title": "Usage (%)",
        "series": ["system.cpu.percent", "system.memory.percent", "system.disk.percent"],
        "labels": ["CPU", "memory", "disk"],
    },
    {"title": "Requests per second", "series": ["http.requests.per_second"], "labels": ["requests/s"]},
    {"title": "p95 latency (ms)", "series": ["http.latency.p95.ms"], "labels": ["p95"]},
    {"title": "Errors (%)", "series": ["http.5xx.percent", "http.4xx.percent"], "labels": ["5xx", "4xx"]},
]
# The range picker's choices, in seconds; the series endpoint accepts exactly these.
RANGES = {"15m": 15 * 60, "1h": 3600, "24h": 24 * 3600, "7d": 7 * 24 * 3600, "30d": 30 * 24 * 3600}
DEFAULT_RANGE = "15m"

SERIES_PERMISSION = "metrics.view_series"  # the history, as the metrics topic (access.TOPIC_PERMISSIONS)
ACKNOWLEDGE_PERMISSION = "alerts.change_alert"


def dashboard_page(request: HttpRequest) -> TemplateResponse:
    """The page, with what its script needs as one JSON blob (urls, series, ranges, permissions)."""
    # A part shows when the socket will feed it: the same permissions as the WebSocket's topics.
    topics = [topic for topic, (app, name) in TOPIC_PERMISSIONS.items() if request.user.has_perm(f"{app}.{name}")]
    config = {
        "socket_path": "/ws/dashboard/",
        "series_url": reverse("dashboard:series"),
        "acknowledge_url": reverse("dashboard:acknowledge", args=[0]),  # 0 is replaced by the alert's id
        "topics": topics,
        "can_acknowledge": request.user.has_perm(ACKNOWLEDGE_PERMISSION),
        "tiles": TILES,
        "charts": CHARTS,
        "ranges": RANGES,
        "range": DEFAULT_RANGE,
    }
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": "Live dashboard",
        "config": config,
        "wall": request.GET.get("wall") == "1",
    }
    return TemplateResponse(request, "admin/dashboard/page.html", context)
