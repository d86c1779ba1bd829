"""Heartbeats (dead-man's switches): made and changed with validation, pinged by jobs, found late by the tick.

Time is the database's. A ping's time is the `at` its row gets from the
database's Now(), its deadline is computed from that, and check_due() compares
deadlines with the database's Now(): web processes and workers with skewed
clocks can neither make a heartbeat late nor keep it up.

What each ping does (an enabled heartbeat):
  success  status up; deadline = the next expected ping (ping + period, or the
           cron's next fire time in the heartbeat's time zone) + grace; an open
           alert is resolved.
  start    status started; deadline = start + max_runtime when set (otherwise
           the schedule's deadline stands).
  fail     status failed; the alert fires at once; deadline as after a success.
The tick marks late every heartbeat past its deadline that is not already late
or failed, and fires its alert: once, since each row is claimed with a
conditional UPDATE (two schedulers, or a ping arriving meanwhile, find nothing
left to claim).

A disabled heartbeat never alerts: disabling resolves its alert and makes it
"new" again (after it is enabled it waits for a ping); its pings are recorded,
without changing its status.
"""

import ipaddress
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import structlog
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.timesince import timesince

from apps.alerts.models import Severity
from apps.alerts.services import alert_fire, alert_resolve
from apps.backups import schedule
from apps.hooks.models import Heartbeat, HeartbeatPing

logger = structlog.get_logger(__name__)

ALERT_SOURCE = "heartbeat"
BODY_KEPT_BYTES = 10 * 1024
MAX_SECONDS = 366 * 86400  # periods, grace and run-time limits: a year is plenty, and it fits the columns
KEEP_PINGS = 1000  # per heartbeat...
KEEP_PING_DAYS = 30  # ...and no older than this
DUE_BATCH = 500  # late heartbeats marked per tick; the rest on the next one
EDITABLE = ("name", "description", "enabled", "period_seconds", "cron", "timezone", "grace_seconds",
            "max_runtime_seconds", "severity")  # fmt: skip
SCHEDULE = ("period_seconds", "cron", "timezone", "grace_seconds", "max_runtime_seconds")
STATUS_AFTER = {
    HeartbeatPing.Kind.SUCCESS: Heartbeat.Status.UP,
    HeartbeatPing.Kind.START: Heartbeat.Status.STARTED,
    HeartbeatPing.Kind.FAIL: Heartbeat.Status.FAILED,
}
ALERTING = (Heartbeat.Status.LATE, Heartbeat.Status.FAILED)
# An alert may be open in these states (a start after a late or failed run keeps it): a success resolves it.
MAY_BE_FIRING = (*ALERTING, Heartbeat.Status.STARTED)
Errors = dict[str, list[str | ValidationError]]  # per field; a name another heartbeat has is code "unique"


# ---------------------------------------------------------------- definitions


def heartbeat_validate(values: dict[str, Any], *, instance: Heartbeat | None = None) -> dict[str, Any]:
    """All EDITABLE values, cleaned (text stripped, cron spaces collapsed); else ValidationError({field: [...]})."""
    errors: Errors = {}
    clean = {
        "name": _string(values, "name", errors).strip(),
        "description": _string(values, "description", errors),
        "enabled": values.get("enabled", True),
        "period_seconds": _seconds(values, "period_seconds", errors, minimum=1, default=None),
        "cron": " ".join(_string(values, "cron", errors).split()),
        "timezone": _string(values, "timezone", errors, default="UTC").strip(),
        "grace_seconds": _seconds(values, "grace_seconds", errors, minimum=0, default=300),
        "max_runtime_seconds": _seconds(values, "max_runtime_seconds", errors, minimum=1, default=None),
        "severity": _string(values, "severity", errors, default=Severity.ERROR),
    }
    _check_name(clean["name"], instance, errors)
    if not isinstance(clean["enabled"], bool):
        errors["enabled"] = ["enabled must be true or false."]
    if clean["timezone"] not in time_zones():
        errors.setdefault("timezone", [f"{clean['timezone'][:64]!r} is not a time zone name, e.g. 'Europe/Paris'."])
    if clean["severity"] not in Severity.values:
        errors.setdefault("severity", [f"The severity must be one of {', '.join(Severity.values)}."])
    _check_schedule(clean, errors)
    if errors:
        raise ValidationError(errors)
    return clean


def _string(values: dict[str, Any], field: str, errors: Errors, default: str = "") -> str:
    value = values.get(field, default)
    text = "" if value is None else str(value)
    try:  # PostgreSQL text holds neither NUL nor unpaired surrogates (valid JSON may carry both as escapes)
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "\x00"
    if "\x00" in text:
        errors[field] = [f"{field} holds a NUL or an unpaired surrogate character."]
        return ""
    return text


def _check_name(name: str, instance: Heartbeat | None, errors: Errors) -> None:
    if "name" in errors:
        return
    if not 1 <= len(name) <= 100:
        errors["name"] = ["A heartbeat needs a name of 1 to 100 characters."]
    elif Heartbeat.objects.filter(name=name).exclude(pk=instance.pk if instance else None).exists():
        errors["name"] = [_taken(name)]


def _taken(name: str) -> ValidationError:
    return ValidationError(f"A heartbeat named {name!r} already exists.", code="unique")


def _seconds(values: dict[str, Any], field: str, errors: Errors, *, minimum: int, default: int | None) -> int | None:
    value = values.get(field, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_SECONDS:
        errors[field] = [f"{field} must be a whole number of seconds from {minimum} to {MAX_SECONDS}."]
        return None
    return value


def _check_schedule(clean: dict[str, Any], errors: Errors) -> None:
    """Exactly one of a period and a cron expression; the expression must fire (in its time zone)."""
    if clean["cron"] and clean["period_seconds"] is not None:
        both = "Set either a period (period_seconds) or a cron expression (cron), not both."
        errors.setdefault("cron", []).append(both)
        errors.setdefault("period_seconds", []).append(both)
    elif not clean["cron"] and clean["period_seconds"] is None and not {"cron", "period_seconds"} & set(errors):
        errors["period_seconds"] = ["Set a period (period_seconds) or a cron expression (cron)."]
    elif clean["cron"] and "timezone" not in errors:
        if len(clean["cron"]) > 100:
            errors["cron"] = ["The cron expression is longer than 100 characters."]
            return
        try:
            schedule.next_after(clean["cron"], timezone.now(), ZoneInfo(clean["timezone"]))
        except ValidationError as error:
            errors["cron"] = list(error.messages)


@cache
def time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def heartbeat_create(*, actor: Any = None, **values: Any) -> Heartbeat:
    """A new heartbeat from EDITABLE values (audited); ValidationError naming each field at fault."""
    _known(values)
    clean = heartbeat_validate(values)
    try:
        with transaction.atomic():
            return Heartbeat.objects.create(**clean, created_by=actor)
    except IntegrityError:  # the same name created meanwhile
        raise ValidationError({"name": [_taken(clean["name"])]}) from None


@transaction.atomic
def heartbeat_update(heartbeat: Heartbeat, **changes: Any) -> Heartbeat:
    """Change EDITABLE fields (audited). A new schedule moves the deadline; disabling resolves the alert."""
    _known(changes)
    row = Heartbeat.objects.select_for_update().get(pk=heartbeat.pk)
    clean = heartbeat_validate({**{field: getattr(row, field) for field in EDITABLE}, **changes}, instance=row)
    changed = [field for field in EDITABLE if clean[field] != getattr(row, field)]
    for field in changed:
        setattr(row, field, clean[field])
    if "enabled" in changed and not row.enabled:
        row.status, row.deadline = Heartbeat.Status.NEW, None
        changed += ["status", "deadline"]
        alert_resolve(source=ALERT_SOURCE, key=str(row.uuid))
    elif row.enabled and (set(changed) & set(SCHEDULE) or "enabled" in changed):
        row.deadline = deadline(row)
        changed.append("deadline")
    if changed:
        try:
            with transaction.atomic():
                row.save(update_fields=changed)
        except IntegrityError:
            raise ValidationError({"name": [_taken(row.name)]}) from None
    return row


@transaction.atomic
def heartbeat_delete(heartbeat: Heartbeat) -> None:
    """Delete it (audited) with its pings; its open alert is resolved, since nothing would resolve it later."""
    alert_resolve(source=ALERT_SOURCE, key=str(heartbeat.uuid))
    Heartbeat.objects.filter(pk=heartbeat.pk).delete()


def _known(values: dict[str, Any]) -> None:
    unknown = sorted(set(values) - set(EDITABLE))
    if unknown:
        raise TypeError(f"not heartbeat fields: {', '.join(unknown)}")


# ---------------------------------------------------------------- schedule


def next_expected(heartbeat: Heartbeat, after: datetime) -> datetime:
    """When the success ping after one at `after` is due: after + period, or the cron's next fire time."""
    if heartbeat.cron:
        return schedule.next_after(heartbeat.cron, after, ZoneInfo(heartbeat.timezone))
    return after + timedelta(seconds=heartbeat.period_seconds or 0)


def deadline(heartbeat: Heartbeat) -> datetime | None:
    """When silence makes it late: a started run's limit, else the next expected ping + grace; None: waits for one."""
    if heartbeat.status == Heartbeat.Status.NEW:
        return None
    if heartbeat.status == Heartbeat.Status.STARTED and heartbeat.max_runtime_seconds and heartbeat.last_start_at:
        return heartbeat.last_start_at + timedelta(seconds=heartbeat.max_runtime_seconds)
    if heartbeat.last_ping_at is None:
        return None
    try:
        return next_expected(heartbeat, heartbeat.last_ping_at) + timedelta(seconds=heartbeat.grace_seconds)
    except (ValidationError, ValueError, LookupError) as error:  # saved around validation: no deadline, no 500
        logger.warning("heartbeat_schedule_invalid", heartbeat=heartbeat.name, error=str(error))
        return None


# ---------------------------------------------------------------- pings


@transaction.atomic
def ping(key: uuid.UUID, *, kind: str, method: str, ip: str | None, user_agent: str, body: bytes) -> HeartbeatPing:
    """Record a ping of the heartbeat whose uuid is key (the first BODY_KEPT_BYTES of its body) and move it on, on
    the database clock. Heartbeat.DoesNotExist for an unknown uuid: the look-up is the row's lock, one statement."""
    row = Heartbeat.objects.select_for_update().filter(uuid=key).first()
    if row is None:
        raise Heartbeat.DoesNotExist(f"no heartbeat {key}")
    record = HeartbeatPing.objects.create(
        heartbeat=row,
        kind=kind,
        method=method[:8],
        ip=_ip(ip),
        user_agent=_decoded(user_agent.encode("utf-8", "replace"))[:300],
        body=_decoded(body[:BODY_KEPT_BYTES]),
    )  # `at` comes back from the insert: the database's Now()
    before = row.status
    if kind == HeartbeatPing.Kind.START:
        row.last_start_at = record.at
    else:
        row.last_ping_at = record.at
    if row.enabled:
        row.status = STATUS_AFTER[kind]
        if kind != HeartbeatPing.Kind.START or row.max_runtime_seconds:  # else the schedule's deadline stands
            row.deadline = deadline(row)
    row.save(update_fields=["last_ping_at", "last_start_at", "status", "deadline"])
    if row.enabled and kind == HeartbeatPing.Kind.FAIL:
        _fire(row, f"Heartbeat {row.name} reported a failure", f"/fail ping at {_when(record.at)}.")
    elif row.enabled and kind == HeartbeatPing.Kind.SUCCESS and before in MAY_BE_FIRING:
        alert_resolve(source=ALERT_SOURCE, key=str(row.uuid))
    return record


def _decoded(data: bytes) -> str:
    # PostgreSQL text cannot hold NUL; a multi-byte character cut at the limit becomes U+FFFD.
    return data.decode("utf-8", "replace").replace("\x00", "\ufffd")


def _ip(text: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(text or ""))
    except ValueError:
        return None


# ---------------------------------------------------------------- the tick


def check_due() -> list[str]:
    """Mark late each enabled heartbeat past its deadline (database clock) and fire its alert, once; their names."""
    due = (
        Heartbeat.objects.filter(enabled=True, deadline__lt=Now())  # the partial index hooks_heartbeat_due
        .exclude(status__in=ALERTING)
        .annotate(db_now=Now())
        .order_by("deadline")[:DUE_BATCH]
    )
    return [row.name for row in due if _mark_late(row)]


def _mark_late(row: Heartbeat) -> bool:
    with transaction.atomic():
        # Claimed as read: a ping or another scheduler that got there first leaves nothing to claim.
        claimed = Heartbeat.objects.filter(pk=row.pk, enabled=True, status=row.status, deadline=row.deadline)
        if not claimed.update(status=Heartbeat.Status.LATE):
            return False
        _fire(row, *_late_message(row, row.db_now))
    logger.info("heartbeat_late", heartbeat=row.name, deadline=row.deadline.isoformat())
    return True


def _late_message(row: Heartbeat, now: datetime) -> tuple[str, str]:
    """(summary, description): how late, and when the last ping came."""
    last = f"last ping {_ago(row.last_ping_at, now)}" if row.last_ping_at else "never pinged successfully"
    if row.status == Heartbeat.Status.STARTED and row.max_runtime_seconds and row.last_start_at:
        limit = span(timedelta(seconds=row.max_runtime_seconds))
        summary = f"Heartbeat {row.name}: the run started at {_when(row.last_start_at)} did not finish within {limit}"
        return summary, f"/start at {_when(row.last_start_at)}, no success or failure since; {last}."
    expected = row.deadline - timedelta(seconds=row.grace_seconds)
    summary = f"Heartbeat {row.name} is {span(now - expected)} late ({last})"
    grace = span(timedelta(seconds=row.grace_seconds))
    return summary, f"A ping was expected by {_when(expected)} (grace {grace}); {last}."


def _fire(row: Heartbeat, summary: str, description: str) -> None:
    severity = row.severity if row.severity in Severity.values else Severity.ERROR
    alert_fire(source=ALERT_SOURCE, key=str(row.uuid), severity=severity, summary=summary,
               description=description, labels={"heartbeat": row.name})  # fmt: skip


def span(delta: timedelta) -> str:
    """'1 hour, 5 minutes' (Django's timesince, plain spaces: it goes out by mail and chat)."""
    if delta < timedelta(minutes=1):
        return f"{max(0, int(delta.total_seconds()))} seconds"
    now = datetime.now(UTC)
    return timesince(now - delta, now).replace("\xa0", " ")


def span_seconds(seconds: int) -> str:
    return span(timedelta(seconds=seconds))


def _ago(at: datetime, now: datetime) -> str:
    return f"{span(now - at)} ago, at {_when(at)}"


def _when(at: datetime) -> str:
    return at.astimezone(timezone.get_default_timezone()).strftime("%Y-%m-%d %H:%M:%S %Z")


# ---------------------------------------------------------------- retention


def prune() -> int:
    """Delete each heartbeat's pings older than KEEP_PING_DAYS or beyond its newest KEEP_PINGS; how many went."""
    age_limit = timezone.now() - timedelta(days=KEEP_PING_DAYS)  # a day's precision: the web clock will do
    deleted = 0
    for heartbeat_id in Heartbeat.objects.values_list("pk", flat=True):
        pings = HeartbeatPing.objects.filter(heartbeat_id=heartbeat_id)  # the index hooks_heartbeat_pings
        oldest_kept = pings.order_by("-at").values_list("at", flat=True)[KEEP_PINGS - 1 : KEEP_PINGS].first()
        limit = max(age_limit, oldest_kept) if oldest_kept else age_limit
        deleted += pings.filter(at__lt=limit).delete()[0]
    return deleted
