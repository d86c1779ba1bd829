"""Delivery of the outbox: claim a notification with a lease, send it outside any transaction, finish it
only while still holding the lease.

The database is the source of truth, not the broker. services.py writes the rows
and dispatches them after its commit; sweep(), every tick, dispatches again what is
due and held by nobody, so a lost task, a killed worker or a crash between commit
and dispatch only delays a notification. An attempt first claims its row (SKIP
LOCKED on PostgreSQL, a compare-and-set update on SQLite), so two tasks for one row
send it once, and a worker whose lease ran out and was taken over has its result
dropped. Every attempt carries the row's idempotency key: at-least-once means a
receiver may see a key twice (a worker killed after sending), never a row lost.
"""

import os
import random
import secrets
import socket
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.alerts import transports
from apps.alerts.models import DeliveryAttempt, Notification, NotificationChannel
from apps.alerts.transports import Outcome
from apps.audit.services import record

logger = structlog.get_logger(__name__)

BATCH = 20  # notifications per task: at ALERTS_DELIVERY_TIMEOUT_SECONDS each, far within the task time limit
SWEEP_LIMIT = 1000  # rows a tick looks at; the next tick takes the rest
RATE_WINDOW = timedelta(minutes=1)
# lease_owner of a row that sweep() has just dispatched: the next tick leaves it alone for a
# lease's length, and any worker may claim it (worker tokens contain ":", this does not).
QUEUED = "queued"
IN_FLIGHT = "no result recorded: still sending, or the worker stopped"
Status = Notification.Status


# ---------------------------------------------------------------- dispatching


def dispatch_on_commit(notification_ids: list[int]) -> None:
    """Queue a task that delivers these notifications once the current transaction commits (at once outside one).

    A broker that cannot take the task is logged, not raised: the rows are
    committed, and the next sweep() dispatches them.
    """
    if notification_ids:
        ids = list(notification_ids)
        transaction.on_commit(lambda: _dispatch(ids), robust=True)


def sweep(now: datetime | None = None, *, inline: bool = False) -> int:
    """Every tick: make dead the rows past their give-up time, and dispatch the due rows nobody holds.

    It dispatches rather than sends, so the tick stays short whatever the receivers
    do and the sending is spread over the workers. A dispatched row is marked
    queued for a lease's length, so a tick that comes round before a worker took
    it does not queue it again. With inline (`manage.py alerts deliver`), this
    process sends them itself instead. Returns how many rows it gave up or dispatched.
    """
    now = now or timezone.now()
    expired = Notification.objects.filter(_expired(now)).values_list("pk", flat=True)
    given_up = sum(_give_up(pk, now) for pk in list(expired[:SWEEP_LIMIT]))
    with transaction.atomic():
        due = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(_due(now) & _free(now))
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:SWEEP_LIMIT]
        )
        Notification.objects.filter(pk__in=due).update(lease_owner=QUEUED, lease_expires_at=_lease_end(now))
    if inline:
        deliver(due)
    else:
        _dispatch(due)
    return given_up + len(due)


def _dispatch(ids: list[int]) -> None:
    from apps.alerts.tasks import deliver_task  # tasks.py imports this module

    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        try:
            deliver_task.delay(batch)
        except Exception:
            logger.warning("notification_dispatch_failed", notifications=batch, exc_info=True)


# ---------------------------------------------------------------- delivering


def deliver(notification_ids: Iterable[int]) -> None:
    """The task body: claim, send and finish each notification that is due and held by nobody else.

    Rows that are not (delivered, dead, waiting for a retry, or held by a live
    lease) are skipped, so a duplicate or stale task does no harm.
    """
    for pk in notification_ids:
        _attempt(pk)


def _attempt(pk: int) -> None:
    owner = _token()
    claimed = _claim(pk, owner)
    if claimed is None:
        return
    row, attempt = claimed
    started = time.monotonic()
    outcome = _send(row)
    _finish(row, attempt, owner, outcome, round((time.monotonic() - started) * 1000))


def _claim(pk: int, owner: str) -> tuple[Notification, DeliveryAttempt] | None:
    """Lease the row, check the channel's rate limit and record the attempt, in one short transaction."""
    now = timezone.now()
    with transaction.atomic():
        row = _lease(pk, owner, now)
        if row is None:
            return None
        if not row.channel.enabled and row.kind != Notification.Kind.TEST:
            _close(row, owner, status=Status.DEAD, last_error="not sent: the channel is disabled")
            return None
        free_at = _rate_limited(row.channel, now)
        if free_at is not None:  # not an attempt: it waits for its turn
            _close(row, owner, next_attempt_at=free_at)
            logger.info("notification_rate_limited", notification=pk, channel=row.channel.name, until=free_at)
            return None
        Notification.objects.filter(pk=pk).update(attempts=F("attempts") + 1)
        row.attempts += 1
        attempt = DeliveryAttempt.objects.create(notification=row, at=now, worker=owner, error=IN_FLIGHT)
    return row, attempt


def _lease(pk: int, owner: str, now: datetime) -> Notification | None:
    claimable = Notification.objects.filter(_due(now) & (_free(now) | Q(lease_owner=QUEUED)), pk=pk)
    lease = {"lease_owner": owner, "lease_expires_at": _lease_end(now)}
    if connection.features.has_select_for_update_skip_locked:
        # PostgreSQL: lock the row, or skip it at once if another worker is claiming it.
        row = claimable.select_for_update(skip_locked=True, of=("self",)).select_related("channel").first()
        if row is None:
            return None
        Notification.objects.filter(pk=pk).update(**lease)
    else:
        # SQLite has no row locks: a compare-and-set update claims the row if it is still claimable (rowcount 1).
        if claimable.update(**lease) != 1:
            return None
        row = Notification.objects.select_related("channel").get(pk=pk)
    row.lease_owner, row.lease_expires_at = lease["lease_owner"], lease["lease_expires_at"]
    return row


def _rate_limited(channel: NotificationChannel, now: datetime) -> datetime | None:
    """When the channel has a free slot again, or None if it has one now (attempts in the last minute < limit)."""
    limit = channel.rate_limit_per_minute
    if not limit:
        return None
    # Claims on one channel take turns here, so concurrent workers cannot both take the last slot.
    list(NotificationChannel.objects.select_for_update().filter(pk=channel.pk).values_list("pk", flat=True))
    recent = list(
        DeliveryAttempt.objects.filter(notification__channel=channel, at__gt=now - RATE_WINDOW)
        .order_by("-at")
        .values_list("at", flat=True)[:limit]
    )
    return recent[-1] + RATE_WINDOW if len(recent) == limit else None


def _send(row: Notification) -> Outcome:
    try:
        return transports.for_channel(row.channel).send(row)
    except transports.ChannelError as error:
        return Outcome.permanent(f"channel settings: {error}")
    except Exception as error:  # a bug in a transport: recorded on the row, and the batch goes on
        logger.exception("notification_transport_crashed", notification=row.pk, channel=row.channel.name)
        return Outcome.transient(f"{type(error).__name__}: {error}")


def _finish(row: Notification, attempt: DeliveryAttempt, owner: str, outcome: Outcome, duration_ms: int) -> None:
    """Record the attempt; apply its result to the row only while the lease is still ours."""
    fields = _next_state(row, outcome, timezone.now())
    with transaction.atomic():
        held = _close(row, owner, **fields)
        error = outcome.error if held else f"{outcome.error} [result dropped: the lease had passed to another worker]"
        DeliveryAttempt.objects.filter(pk=attempt.pk).update(
            status_code=outcome.status, error=error.strip(), duration_ms=duration_ms, delivered=outcome.delivered
        )
        if held and fields["status"] == Status.DEAD:
            _report(row, fields["last_error"])
    log = logger.info if held and outcome.delivered else logger.warning
    log(
        "notification_attempt" if held else "notification_attempt_fenced",
        notification=row.pk,
        key=row.key,
        channel=row.channel.name,
        status=fields["status"],
        http_status=outcome.status,
        error=outcome.error,
        attempt=row.attempts,
        duration_ms=duration_ms,
    )


def _next_state(row: Notification, outcome: Outcome, now: datetime) -> dict[str, Any]:
    if outcome.delivered:
        return {"status": Status.DELIVERED, "delivered_at": now, "last_status": outcome.status, "last_error": ""}
    state = {"status": Status.DEAD, "last_status": outcome.status, "last_error": outcome.error}
    if outcome.retry:
        retry_at = now + timedelta(seconds=backoff(row.attempts, outcome.retry_after))
        if retry_at <= row.give_up_at:
            return {**state, "status": Status.PENDING, "next_attempt_at": retry_at}
        state["last_error"] = f"{outcome.error}; the next try would be after the give-up time"
    return state


def backoff(attempts: int, retry_after: float | None = None) -> float:
    """Seconds until the next try: full jitter under a ceiling that doubles from ALERTS_RETRY_FIRST_SECONDS to
    ALERTS_RETRY_MAX_SECONDS, but never
    sooner than the receiver asked (Retry-After). Jitter keeps a recovering receiver from a synchronised burst.
    """
    first, most = settings.ALERTS_RETRY_FIRST_SECONDS, settings.ALERTS_RETRY_MAX_SECONDS
    ceiling = min(most, first * 2 ** min(max(attempts, 1) - 1, 16))
    return max(random.uniform(0, ceiling), retry_after or 0.0)  # noqa: S311 - jitter, not a secret


def _close(row: Notification, owner: str, **fields: Any) -> bool:
    """Update the row and drop the lease, if the lease is still owner's (the fence: False when it is not)."""
    return (
        Notification.objects.filter(pk=row.pk, lease_owner=owner).update(
            **fields, lease_owner="", lease_expires_at=None
        )
        == 1
    )


# ---------------------------------------------------------------- dead letters


def _give_up(pk: int, now: datetime) -> int:
    with transaction.atomic():
        row = Notification.objects.select_related("channel").filter(pk=pk).first()
        if row is None:
            return 0
        error = f"not delivered by the give-up time ({row.attempts} attempts)"
        error += f"; last error: {row.last_error}" if row.last_error else ""
        gone = Notification.objects.filter(_expired(now), pk=pk).update(
            status=Status.DEAD, last_error=error, lease_owner="", lease_expires_at=None
        )
        if gone:
            _report(row, error)
    return gone


def _report(row: Notification, error: str) -> None:
    """Raise the channel's undeliverable alert, which services sends to the other channels only.

    A dead test notification is not reported (whoever sent it sees the result),
    nor is a dead report: reporting it would loop, so it is only logged.
    """
    from apps.alerts import services  # services.py imports this module

    channel = row.channel.name
    reportable = (
        row.kind != Notification.Kind.TEST and not row.alerts.filter(source=services.UNDELIVERABLE_SOURCE).exists()
    )
    logger.error(
        "notification_dead", notification=row.pk, key=row.key, channel=channel, error=error, reported=reportable
    )
    if reportable:
        services.alert_fire(
            source=services.UNDELIVERABLE_SOURCE,
            key=f"undeliverable:{channel}",
            severity="error",
            summary=f"Notifications to channel {channel} cannot be delivered: {error}",
            description=(
                f"The {row.kind} notification {row.key} is dead after {row.attempts} attempts. It stays in the "
                "admin (Notifications, status dead) and can be replayed with the same key once the channel works."
            ),
            labels={"channel": channel},
        )


# ---------------------------------------------------------------- by hand


def replay(notification: Notification, *, actor: AbstractBaseUser | None = None) -> bool:
    """Send a dead notification again, with the same key, a fresh give-up time and a fresh backoff.

    Audited. Returns False (and changes nothing) when the row is not dead.
    """
    now = timezone.now()
    with transaction.atomic():
        replayed = Notification.objects.filter(pk=notification.pk, status=Status.DEAD).update(
            status=Status.PENDING,
            attempts=0,
            next_attempt_at=now,
            give_up_at=_give_up_at(now),
            lease_owner="",
            lease_expires_at=None,
        )
        if replayed:
            details = {"key": notification.key, "channel": notification.channel.name}
            record("notification.replay", resource=notification, actor=actor, details=details)
            dispatch_on_commit([notification.pk])
    notification.refresh_from_db()
    return bool(replayed)


def send_test(channel: NotificationChannel, *, actor: AbstractBaseUser | None = None) -> Notification:
    """Send a test notification to the channel now, from this thread, and return it with its outcome.

    Call it outside a transaction. It is an ordinary notification: the channel's
    rate limit applies, and a failure worth retrying leaves it pending for the
    sweeper; it is delivered only when its status says so. Audited.
    """
    now = timezone.now()
    with transaction.atomic():
        row = Notification.objects.create(
            key=f"test:{channel.pk}:{uuid.uuid4().hex}",
            channel=channel,
            kind=Notification.Kind.TEST,
            payload={
                "kind": Notification.Kind.TEST,
                "title": f"[TEST] opsportal test notification to {channel.name}",
                "text": f"Sent at {now:%Y-%m-%d %H:%M:%S %Z} to check the channel {channel.name}. No action needed.",
                "alerts": [],
            },
            next_attempt_at=now,
            created_at=now,
            give_up_at=_give_up_at(now),
        )
        record("channel.test", resource=channel, actor=actor, details={"notification": row.key})
    _attempt(row.pk)
    row.refresh_from_db()
    return row


# ---------------------------------------------------------------- conditions


def _due(now: datetime) -> Q:
    return Q(status=Status.PENDING, next_attempt_at__lte=now, give_up_at__gte=now)


def _free(now: datetime) -> Q:
    """Held by nobody: never leased, or the lease ran out (its worker died or is far too slow)."""
    return Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)


def _expired(now: datetime) -> Q:
    return Q(status=Status.PENDING, give_up_at__lt=now) & (_free(now) | Q(lease_owner=QUEUED))


def _lease_end(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.ALERTS_LEASE_SECONDS)


def _give_up_at(now: datetime) -> datetime:
    return now + timedelta(minutes=settings.ALERTS_GIVE_UP_MINUTES)


def _token() -> str:
    """A lease token, new for every attempt, naming the process that tried (it shows in the attempt log)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(6)}"
