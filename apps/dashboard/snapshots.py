"""What a page needs to be complete at once, per topic: sent on subscribe and on resync.

Each provider is synchronous (ORM reads) and returns JSON-ready data; the hub
runs it through database_sync_to_async, once per topic for every socket waiting.
"""

from collections.abc import Callable
from typing import Any

from apps.alerts import render
from apps.alerts.models import Alert, State
from apps.audit.models import AuditEvent
from apps.audit.services import live_event
from apps.backups.live import running
from apps.health import services as health
from apps.metrics.queries import latest_values

ALERTS_LIMIT = 200
AUDIT_LIMIT = 50


def metrics() -> dict[str, Any]:
    return latest_values()


def health_state() -> dict[str, Any]:
    states = health.latest()
    return {"overall": str(health.overall(s.status for s in states)), "checks": [s.as_dict() for s in states]}


def alerts() -> dict[str, Any]:
    """Firing and acknowledged alerts, newest first."""
    rows = Alert.objects.filter(state__in=[State.FIRING, State.ACKNOWLEDGED]).order_by("-last_fired_at")
    return {"alerts": [render.describe(alert) for alert in rows[:ALERTS_LIMIT]]}


def audit() -> dict[str, Any]:
    """The last events, newest first, in the shape of the live "event" frames."""
    rows = AuditEvent.objects.order_by("-id")[:AUDIT_LIMIT]
    return {
        "events": [
            live_event(e.pk, e.timestamp, e.actor_username, e.action, _resource(e), e.ip, e.request_id) for e in rows
        ]
    }


def _resource(event: AuditEvent) -> tuple[str, str, str]:
    return event.resource_type, event.resource_id, event.resource_repr


PROVIDERS: dict[str, Callable[[], dict[str, Any]]] = {
    "metrics": metrics,
    "health": health_state,
    "alerts": alerts,
    "audit": audit,
    "backups": running,
}
