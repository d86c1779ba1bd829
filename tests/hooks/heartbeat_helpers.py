"""Heartbeats for the tests: made through the service, pinged, and made overdue without travelling in time.

The deadline is on the database clock, which time-machine cannot move, so a test
makes a heartbeat overdue by moving its deadline into the past.
"""

from datetime import timedelta
from typing import Any

from django.utils import timezone

from apps.alerts.models import Alert
from apps.hooks import heartbeats
from apps.hooks.models import Heartbeat, HeartbeatPing


def make_heartbeat(**values: Any) -> Heartbeat:
    values.setdefault("name", f"job-{Heartbeat.objects.count() + 1}")
    if "cron" not in values:
        values.setdefault("period_seconds", 3600)
    return heartbeats.heartbeat_create(**values)


def send(heartbeat: Heartbeat, kind: str = HeartbeatPing.Kind.SUCCESS, body: bytes = b"") -> HeartbeatPing:
    return heartbeats.ping(heartbeat.uuid, kind=kind, method="POST", ip="192.0.2.7", user_agent="curl/8", body=body)


def overdue(heartbeat: Heartbeat, by: timedelta = timedelta(hours=1)) -> None:
    Heartbeat.objects.filter(pk=heartbeat.pk).update(deadline=timezone.now() - by)


def alert_of(heartbeat: Heartbeat) -> Alert | None:
    return Alert.objects.filter(source="heartbeat", key=str(heartbeat.uuid)).first()
