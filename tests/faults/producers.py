"""What the alert fault tests and benchmarks run inside the portal, in `manage.py shell -c` (harness.Portal.call).

Alerts are raised with services.alert_fire(), as every producer raises them; the
routes and channels are rows, as an admin would save them. Each scenario has a
webhook channel and a route of its own, both named after it.
"""

import os
import signal
import time
from typing import Any

import httpx
from django.db import transaction

from apps.alerts import delivery, services
from apps.alerts.models import (
    DeliveryAttempt,
    EscalationPolicy,
    EscalationStep,
    Notification,
    NotificationChannel,
    Route,
)
from apps.alerts.tasks import deliver_task


def route_to(*, name: str, url: str, group_wait: int = 0, default: bool = False) -> int:
    """A webhook channel `name` to url and a route that notifies it of alerts labelled scenario=<name>.

    The channel is internal (it points at loopback) and has no rate limit; the
    route groups by the label n, which every alert has its own value of, so each
    alert is a notification of its own, sent at once with group_wait 0. A default
    route matches every alert. Returns the channel's id.
    """
    channel, _ = NotificationChannel.objects.update_or_create(
        name=name, defaults={"kind": "webhook", "url": url, "internal": True, "rate_limit_per_minute": 0}
    )
    policy, _ = EscalationPolicy.objects.get_or_create(name=name)
    step, _ = EscalationStep.objects.get_or_create(policy=policy, position=0)
    step.channels.set([channel])
    Route.objects.update_or_create(
        name=name,
        defaults={
            "matchers": [] if default else [f"scenario={name}"],
            "is_default": default,
            "policy": policy,
            "group_by": ["n"],
            "group_wait_seconds": group_wait,
            "repeat_interval_minutes": 0,
        },
    )
    return channel.pk


def fire(*, scenario: str, count: int, first: int = 0, interval: float = 0.0, dispatch: str = "yes") -> list[dict]:
    """Fire `count` new alerts one after another, each in its own transaction; when each call began and its length.

    interval paces the calls (seconds from one call's start to the next). With
    dispatch="none" the notifications are written but no task is queued (they
    wait for a sweep); with dispatch="crash" the alerts are fired in one
    transaction and the process SIGKILLs itself as the first task is about to be
    queued, after the commit: the rows exist, no task does, and nothing returns.
    """
    if dispatch == "none":
        deliver_task.delay = lambda *args, **kwargs: None
    if dispatch == "crash":
        deliver_task.delay = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
        with transaction.atomic():
            return _fire(scenario, range(first, first + count), interval)
    return _fire(scenario, range(first, first + count), interval)


def _fire(scenario: str, numbers: range, interval: float) -> list[dict]:
    fired = []
    for n in numbers:
        started = time.time()
        services.alert_fire(
            source="faults",
            key=f"{scenario}-{n}",
            severity="critical",
            summary=f"{scenario} {n} is down",
            labels={"scenario": scenario, "n": str(n)},
        )
        fired.append({"key": f"{scenario}-{n}", "at": started, "took": time.time() - started})
        if interval:
            time.sleep(max(0.0, started + interval - time.time()))
    return fired


def report(*, scenario: str) -> dict[str, Any]:
    """The scenario's notifications, and every attempt at them, as the database has them."""
    rows = Notification.objects.filter(channel__name=scenario).order_by("pk")
    attempts = DeliveryAttempt.objects.filter(notification__channel__name=scenario).order_by("pk")
    return {
        "notifications": {
            row.key: {
                "status": row.status,
                "attempts": row.attempts,
                "created_at": row.created_at.timestamp(),
                "delivered_at": row.delivered_at.timestamp() if row.delivered_at else None,
            }
            for row in rows
        },
        "attempts": [
            {
                "key": attempt.notification.key,
                "status_code": attempt.status_code,
                "delivered": attempt.delivered,
                "error": attempt.error,
                "at": attempt.at.timestamp(),
                "worker": attempt.worker,
                # the worker was killed between claiming the row and recording the outcome
                "orphaned": attempt.error == delivery.IN_FLIGHT,
            }
            for attempt in attempts.select_related("notification")
        ],
    }


def sweep_all() -> dict[str, float]:
    """delivery.sweep() until it finds nothing more to dispatch; when it started and how many it dispatched."""
    started, dispatched = time.time(), 0
    while found := delivery.sweep():
        dispatched += found
    return {"started": started, "dispatched": dispatched}


def deliver_here(*, scenario: str) -> dict[str, float]:
    """delivery.deliver() in this process, no Celery, over the scenario's pending notifications; its time."""
    ids = list(Notification.objects.filter(channel__name=scenario, status="pending").values_list("pk", flat=True))
    started = time.perf_counter()
    delivery.deliver(ids)
    return {"notifications": len(ids), "seconds": time.perf_counter() - started}


def post_plainly(*, url: str, body: str, count: int, interval: float = 0.0, keep_alive: bool = True) -> dict:
    """POST body to url count times from this process with one httpx client: the baseline for delivery and latency.

    With keep_alive one connection serves every POST; without, each POST opens a
    connection of its own, as the portal's outbound client does. Returns the time
    and, per POST, its key (the webhook-id sent) and when it was sent.
    """
    limits = httpx.Limits(max_keepalive_connections=None if keep_alive else 0)
    headers = {"Content-Type": "application/json"}
    sent = []
    with httpx.Client(timeout=10, limits=limits) as client:
        started = time.perf_counter()
        for n in range(count):
            key, at = f"plain-{n}", time.time()
            client.post(url, content=body.encode(), headers={**headers, "webhook-id": key}).raise_for_status()
            sent.append({"key": key, "at": at})
            if interval:
                time.sleep(max(0.0, at + interval - time.time()))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "sent": sent}
