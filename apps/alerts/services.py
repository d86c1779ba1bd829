"""The incident engine's service functions.

Producers call alert_fire() and alert_resolve() by (source, key); people call
alert_acknowledge(), alert_unacknowledge() and alert_resolve(actor=...); the
scheduler calls tick(). Each runs in one transaction that locks the alert row,
so concurrent calls on one alert end consistent, and writes the notifications
it decides on in that same transaction (the outbox): a crash before the commit
leaves neither, a crash after it leaves both, and delivery picks them up.
"""

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from apps.alerts import delivery, matchers, queries, render, revision, routing, silences
from apps.alerts.models import (
    Alert,
    EscalationStep,
    Notification,
    NotificationChannel,
    Route,
    Severity,
    Silence,
    State,
    Transition,
)
from apps.audit.services import record, sanitize
from apps.core.broadcast import broadcast_on_commit

MAX_LABELS = 64
UNDELIVERABLE_SOURCE = "alerts"  # alerts about the alerting itself: key undeliverable:<channel>, label channel
NO_ROUTE = "No route matches and there is no default route."
NOTIFIED_KINDS = (Notification.Kind.FIRING, Notification.Kind.ESCALATION, Notification.Kind.REMINDER)


class AlertError(ValueError):
    """Bad input to an alert service; the message is meant for the caller's user, `field` names the argument."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


# ---------------------------------------------------------------- producers


def alert_fire(
    *,
    source: str,
    key: str,
    severity: str,
    summary: str,
    description: str = "",
    labels: Mapping[str, Any] | None = None,
    value: Any = None,
) -> Alert:
    """Raise the alert (source, key), or update it if it is already open (no new notification).

    After a resolve, firing again begins a new episode in the same alert's history.
    """
    source, key = _name(source, "source", 100), _name(key, "key", 200)
    severity, labels = _severity(severity), _labels(labels)
    summary = str(summary).strip()[:500]
    if not summary:
        raise AlertError("summary must not be empty", field="summary")
    content = {
        "severity": severity,
        "summary": summary,
        "description": str(description)[:10_000],
        "labels": labels,
        "value": sanitize(value),
    }
    now, fields = timezone.now(), matchers.alert_fields(source, key, severity, labels)
    # No savepoint inside a caller's transaction (as Model.save): an error here fails the caller's anyway.
    with transaction.atomic(savepoint=False):
        plan = _plan(fields, routing.rules(), now)
        alert, stamp = queries.fire(_new_alert(source, key, content, plan, now), first=plan.first, until=plan.until)
        revision.EPOCH.move_on_commit()  # the statement changed a row (or added one) without a save
        if alert is None:  # resolved, or its severity changed
            alert = _fire_again(source, key, content, fields, now)
        elif alert.fire_count == 1:  # a new alert
            if stamp != plan.stamp:  # routes or silences changed since this process loaded them
                plan = _plan(fields, routing.load(), now)
                _schedule(alert, plan)
                alert.save(update_fields=["route", "group_key", "notify_at", "silenced_by"])
            _begin(alert, plan, Transition.Kind.FIRED, now)
        elif stamp != plan.stamp:
            routing.load()  # for the next new alert
        _broadcast(alert)
    return alert


def alert_resolve(*, source: str, key: str, actor: AbstractBaseUser | None = None, comment: str = "") -> Alert | None:
    """Resolve the open alert (source, key) and tell everyone who was told of it; idempotent.

    Returns the alert, or None when there is no such alert. With an actor (a
    person resolving by hand) the resolve is audited.
    """
    with transaction.atomic():
        alert = Alert.objects.select_for_update().filter(source=source, key=key).first()
        if alert is None or not alert.is_open:
            return alert
        now = timezone.now()
        channels = _told(alert)
        if channels:
            _notify(Notification.Kind.RESOLVED, [alert], channels, f"{alert.pk}:{alert.episode}", now)
        alert.state, alert.resolved_at, alert.resolved_by = State.RESOLVED, now, actor
        alert.notify_at = alert.escalate_at = alert.remind_at = None
        alert.save()
        _done_by(
            alert,
            Transition.Kind.RESOLVED,
            now,
            actor,
            comment,
            details={"notified": [channel.name for channel in channels]},
        )
    return alert


# ---------------------------------------------------------------- people


def alert_acknowledge(alert: Alert, *, actor: AbstractBaseUser, comment: str = "") -> bool:
    """Someone is on it: escalation and reminders stop. False if the alert was not firing (nothing changes)."""
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.state != State.FIRING:
            return False
        now = timezone.now()
        alert.state, alert.acknowledged_at, alert.acknowledged_by = State.ACKNOWLEDGED, now, actor
        alert.notify_at = alert.escalate_at = alert.remind_at = None
        alert.save()
        _done_by(alert, Transition.Kind.ACKNOWLEDGED, now, actor, comment)
    return True


def alert_unacknowledge(alert: Alert, *, actor: AbstractBaseUser, comment: str = "") -> bool:
    """Back to firing: escalation resumes where it stopped. False if the alert was not acknowledged."""
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.state != State.ACKNOWLEDGED:
            return False
        now = timezone.now()
        alert.state, alert.acknowledged_at, alert.acknowledged_by = State.FIRING, None, None
        route = _route(alert)
        if route is not None:
            if alert.escalation_step == 0:  # acknowledged before anyone was told
                alert.notify_at = now
            else:
                alert.escalate_at = _next_escalation(route, alert.escalation_step, now)
                alert.remind_at = _next_reminder(route, now)
        alert.save()
        _done_by(alert, Transition.Kind.UNACKNOWLEDGED, now, actor, comment)
    return True


def silence_applied(silence: Silence) -> int:
    """Show the open alerts a new or changed silence covers as silenced now; returns how many.

    (Their notifications would wait at their next step anyway; this makes the
    list and the timelines say so at once.)
    """
    now = timezone.now()
    span = silences.window(silence, now)
    try:
        rules = matchers.parse_all(silence.matchers)
    except matchers.MatcherError:
        return 0
    if span is None:
        return 0
    marked = 0
    for pk in Alert.objects.exclude(state=State.RESOLVED).exclude(silenced_by=silence).values_list("pk", flat=True):
        with transaction.atomic():
            alert = Alert.objects.select_for_update().get(pk=pk)
            if not alert.is_open or not matchers.all_match(rules, _fields(alert)):
                continue
            alert.silenced_by = silence
            alert.save(update_fields=["silenced_by", "updated_at"])
            _transition(
                alert,
                Transition.Kind.SILENCED,
                now,
                comment=silence.comment,
                details={"silence": silence.pk, "until": span[1].isoformat()},
            )
            _broadcast(alert)
            marked += 1
    return marked


def silence_expire(silence: Silence) -> bool:
    """End the silence now, keeping its row (alerts' timelines point at it); False if it was already over.

    A repeating silence stops repeating from now on; a one-off window ends now
    (one that had not begun yet is cancelled: it starts and ends now). Saved as
    the admin saves it, so the change is audited and producers reload silences.
    """
    now = timezone.now()
    if silence.repeat and (silence.repeat_until is None or silence.repeat_until > now):
        silence.repeat_until = now
        silence.save(update_fields=["repeat_until"])
    elif not silence.repeat and silence.ends_at > now:
        silence.starts_at, silence.ends_at = min(silence.starts_at, now), now
        silence.save(update_fields=["starts_at", "ends_at"])
    else:
        return False
    return True


# ---------------------------------------------------------------- the schedule


def tick(now: datetime | None = None) -> dict[str, int]:
    """Do the work that is due: first notifications of groups, escalations, reminders.

    Each piece of work is claimed under the alert's row lock and re-checked
    there, so a tick that runs twice (or two ticks at once) does it once.
    """
    now = now or timezone.now()
    done = {"groups": 0, "escalations": 0, "reminders": 0}
    groups = Alert.objects.filter(notify_at__lte=now, state=State.FIRING).values_list("route_id", "group_key")
    for route_id, group in set(groups[:1000]):
        with transaction.atomic():
            done["groups"] += _flush_group(route_id, group, now)
    for name, field, step in (("escalations", "escalate_at", _escalate), ("reminders", "remind_at", _remind)):
        due = Alert.objects.filter(**{f"{field}__lte": now, "state": State.FIRING}).values_list("pk", flat=True)
        for pk in list(due[:1000]):
            with transaction.atomic():
                done[name] += step(pk, now)
    return done


# ---------------------------------------------------------------- inside the transactions


@dataclass(frozen=True)
class Plan:
    """Where a new episode goes: its route and group, the end of its group_wait, and a silence over it."""

    stamp: Any  # of the rules it was made with
    route: Route | None = None
    group_key: str = ""
    first: datetime | None = None  # the end of group_wait: the first notification is due then at the latest
    silence: Silence | None = None
    until: datetime | None = None  # the end of the silence's window: no notification before

    def notify_at(self, waiting: datetime | None) -> datetime | None:
        """With the group's notification if one is waiting, else at the end of group_wait; not before `until`."""
        if self.route is None:
            return None
        at = min(filter(None, [waiting, self.first]))
        return max(at, self.until) if self.until else at

    def due(self, alert: Alert, now: datetime) -> bool:
        """group_wait 0 and not silenced: the first notification goes out in this transaction."""
        return alert.notify_at is not None and self.silence is None and alert.notify_at <= now

    def timeline(self, alert: Alert, kind: str, now: datetime) -> list[dict[str, Any]]:
        lines = [_line(alert, kind, now, details={"severity": alert.severity, "labels": alert.labels})]
        if self.route is None:
            lines.append(_line(alert, Transition.Kind.UNROUTED, now, comment=NO_ROUTE))
        elif self.silence is not None:
            lines.append(_silenced_line(alert, self.silence, self.until, now))
        return lines


def _plan(fields: Mapping[str, str], rules: routing.Rules, now: datetime) -> Plan:
    """Route a new episode by the rules, and find the silence that covers it."""
    route = routing.route_for(fields, rules.routes)
    if route is None:
        return Plan(rules.stamp)
    silence, until = silences.covering(fields, now, rules.silences) or (None, None)
    first = now + timedelta(seconds=route.group_wait_seconds)
    return Plan(rules.stamp, route, routing.group_key(route, fields), first, silence, until)


def _new_alert(source: str, key: str, content: dict, plan: Plan, now: datetime) -> dict[str, Any]:
    """A new alert's fields (queries.fire adds its notify_at)."""
    return {
        "source": source,
        "key": key,
        **content,
        "state": State.FIRING,
        "episode": 1,
        "fire_count": 1,
        "started_at": now,
        "last_fired_at": now,
        "escalation_step": 0,
        "updated_at": now,
        "route": plan.route,
        "group_key": plan.group_key,
        "silenced_by": plan.silence,
    }


def _schedule(alert: Alert, plan: Plan) -> None:
    """Route, group and silence the alert as planned, and set when its first notification is due."""
    waiting = queries.group_waiting(plan.route.pk, plan.group_key, alert.pk) if plan.route else None
    alert.route, alert.group_key, alert.silenced_by = plan.route, plan.group_key, plan.silence
    alert.notify_at = plan.notify_at(waiting)


def _fire_again(source: str, key: str, content: dict, fields: Mapping[str, str], now: datetime) -> Alert:
    """Under the row lock: count the fire of an open alert whose severity changed, or begin a new episode."""
    alert = Alert.objects.select_for_update().get(source=source, key=key)
    if alert.is_open:
        _refresh(alert, content, now)
        return alert
    for name, new in content.items():
        setattr(alert, name, new)
    alert.episode += 1
    alert.state, alert.fire_count, alert.started_at, alert.last_fired_at = State.FIRING, 1, now, now
    alert.acknowledged_at = alert.acknowledged_by = alert.resolved_at = alert.resolved_by = None
    alert.escalation_step, alert.escalate_at, alert.remind_at = 0, None, None
    plan = _plan(fields, routing.load(), now)
    _schedule(alert, plan)
    alert.save()
    _begin(alert, plan, Transition.Kind.REFIRED, now)
    return alert


def _begin(alert: Alert, plan: Plan, kind: str, now: datetime) -> None:
    queries.add_transitions(plan.timeline(alert, kind, now))
    if plan.due(alert, now):
        _flush_group(alert.route_id, alert.group_key, now)


def _refresh(alert: Alert, content: dict, now: datetime) -> None:
    if content["severity"] != alert.severity:
        _transition(alert, Transition.Kind.SEVERITY, now, details={"from": alert.severity, "to": content["severity"]})
    for name, new in content.items():
        setattr(alert, name, new)
    alert.fire_count += 1
    alert.last_fired_at = now
    alert.save()


def _flush_group(route_id: int | None, group: str, now: datetime) -> int:
    """Send the first notification for the group's due alerts, as one message per channel."""
    due = list(
        Alert.objects.select_for_update(skip_locked=True)
        .filter(route_id=route_id, group_key=group, notify_at__lte=now, state=State.FIRING)
        .order_by("pk")
    )
    ready = [alert for alert in due if not _silence_until(alert, _fields(alert), now, "notify_at")]
    for alert in due:
        if alert not in ready:
            alert.save()
    route = _route(ready[0]) if ready else None
    if route is None:
        for alert in ready:
            alert.notify_at = None
            alert.save()
        return 0
    steps = _steps(route)
    channels = _enabled(steps[0].channels.all()) if steps else []
    members = ",".join(f"{alert.pk}.{alert.episode}" for alert in ready)
    if channels:
        _notify(Notification.Kind.FIRING, ready, channels, hashlib.sha256(members.encode()).hexdigest()[:40], now)
    for alert in ready:
        alert.notify_at, alert.silenced_by, alert.escalation_step = None, None, 1
        alert.escalate_at = _next_escalation(route, 1, now)
        alert.remind_at = _next_reminder(route, now)
        alert.save()
        _transition(
            alert,
            Transition.Kind.NOTIFIED,
            now,
            details={"channels": [channel.name for channel in channels], "group": [a.pk for a in ready]},
        )
    return 1 if ready else 0


def _escalate(pk: int, now: datetime) -> int:
    alert = Alert.objects.select_for_update().get(pk=pk)
    if alert.state != State.FIRING or alert.escalate_at is None or alert.escalate_at > now:
        return 0  # acknowledged, resolved or done by another tick meanwhile
    route = _route(alert)
    if route is None or _silence_until(alert, _fields(alert), now, "escalate_at"):
        if route is None:
            alert.escalate_at = None
        alert.save()
        return 0
    steps = _steps(route)
    step = steps[alert.escalation_step % len(steps)]
    channels = _enabled(step.channels.all())
    if channels:
        _notify(
            Notification.Kind.ESCALATION, [alert], channels, f"{alert.pk}:{alert.episode}:{alert.escalation_step}", now
        )
    alert.escalation_step += 1
    alert.escalate_at = _next_escalation(route, alert.escalation_step, now)
    alert.save()
    _transition(
        alert,
        Transition.Kind.ESCALATED,
        now,
        details={"step": alert.escalation_step, "channels": [channel.name for channel in channels]},
    )
    return 1


def _remind(pk: int, now: datetime) -> int:
    alert = Alert.objects.select_for_update().get(pk=pk)
    if alert.state != State.FIRING or alert.remind_at is None or alert.remind_at > now:
        return 0
    route = _route(alert)
    if route is None or _silence_until(alert, _fields(alert), now, "remind_at"):
        if route is None:
            alert.remind_at = None
        alert.save()
        return 0
    channels = _told(alert)
    if channels:
        _notify(
            Notification.Kind.REMINDER,
            [alert],
            channels,
            f"{alert.pk}:{alert.episode}:{int(alert.remind_at.timestamp())}",
            now,
        )
    alert.remind_at = _next_reminder(route, now)
    alert.save()
    _transition(alert, Transition.Kind.REMINDED, now, details={"channels": [channel.name for channel in channels]})
    return 1


def _silence_until(alert: Alert, fields: Mapping[str, str], now: datetime, field: str) -> bool:
    """If a silence covers the alert, put off `field` to the silence's end and say so once; True if silenced."""
    found = silences.covering(fields, now)
    if found is None:
        alert.silenced_by = None  # a silence that ended (the caller saves)
        return False
    silence, until = found
    setattr(alert, field, max(getattr(alert, field) or now, until))
    if alert.silenced_by_id != silence.pk:
        alert.silenced_by = silence
        queries.add_transitions([_silenced_line(alert, silence, until, now)])
    return True


def _silenced_line(alert: Alert, silence: Silence, until: datetime, now: datetime) -> dict[str, Any]:
    details = {"silence": silence.pk, "until": until.isoformat()}
    return _line(alert, Transition.Kind.SILENCED, now, comment=silence.comment, details=details)


def _notify(kind: str, alerts: list[Alert], channels: Iterable[NotificationChannel], key: str, now: datetime) -> None:
    """Write one outbox row per channel (in the caller's transaction) and have them sent after the commit."""
    content = render.payload(kind, alerts)
    give_up = now + timedelta(minutes=settings.ALERTS_GIVE_UP_MINUTES)
    # A report that a channel is undeliverable goes to the other channels only.
    broken = {alert.labels.get("channel") for alert in alerts if alert.source == UNDELIVERABLE_SOURCE}
    channels = [channel for channel in channels if channel.name not in broken]
    rows = [
        Notification.objects.create(
            key=f"{kind}:{key}:{channel.pk}",
            channel=channel,
            kind=kind,
            payload=content,
            next_attempt_at=now,
            created_at=now,
            give_up_at=give_up,
        )
        for channel in channels
    ]
    for row in rows:
        row.alerts.set(alerts)
    delivery.dispatch_on_commit([row.pk for row in rows])


def _told(alert: Alert) -> list[NotificationChannel]:
    """The channels told of this episode (resolves and reminders go to them)."""
    ids = (
        Notification.objects.filter(alerts=alert, kind__in=NOTIFIED_KINDS, created_at__gte=alert.started_at)
        .values_list("channel_id", flat=True)
        .distinct()
    )
    return _enabled(NotificationChannel.objects.filter(pk__in=list(ids)))


def _enabled(channels: Iterable[NotificationChannel]) -> list[NotificationChannel]:
    return sorted((channel for channel in channels if channel.enabled), key=lambda channel: channel.pk)


def _route(alert: Alert) -> Route | None:
    return Route.objects.select_related("policy").filter(pk=alert.route_id).first() if alert.route_id else None


def _steps(route: Route) -> list[EscalationStep]:
    return list(route.policy.steps.prefetch_related("channels").order_by("position", "pk"))


def _next_escalation(route: Route, done: int, now: datetime) -> datetime | None:
    """When the next step is due after `done` steps, or None when the policy (with its repeats) is used up."""
    steps = _steps(route)
    if not steps or done >= len(steps) * (route.policy.repeat + 1):
        return None
    index = done % len(steps)
    minutes = steps[index].delay_minutes if index else route.policy.repeat_delay_minutes
    return now + timedelta(minutes=minutes)


def _next_reminder(route: Route, now: datetime) -> datetime | None:
    minutes = route.repeat_interval_minutes
    return now + timedelta(minutes=minutes) if minutes else None


def _transition(
    alert: Alert,
    kind: str,
    now: datetime,
    *,
    actor: AbstractBaseUser | None = None,
    comment: str = "",
    details: dict | None = None,
) -> None:
    queries.add_transitions([_line(alert, kind, now, actor=actor, comment=comment, details=details)])


def _line(
    alert: Alert,
    kind: str,
    now: datetime,
    *,
    actor: AbstractBaseUser | None = None,
    comment: str = "",
    details: dict | None = None,
) -> dict[str, Any]:
    """A line of the alert's timeline, as Transition fields."""
    return {
        "alert": alert.pk,
        "episode": alert.episode,
        "kind": kind,
        "at": now,
        "actor": actor.pk if actor else None,
        "actor_name": actor.get_username() if actor else "",
        "comment": str(comment)[:5000],
        "details": details or {},
    }


AUDITED = {
    Transition.Kind.ACKNOWLEDGED: "alert.ack",
    Transition.Kind.UNACKNOWLEDGED: "alert.unack",
    Transition.Kind.RESOLVED: "alert.resolve",
}


def _done_by(
    alert: Alert, kind: str, now: datetime, actor: AbstractBaseUser | None, comment: str, details: dict | None = None
) -> None:
    """A transition on the timeline; done by a person, in the audit trail too; then broadcast."""
    _transition(alert, kind, now, actor=actor, comment=comment, details=details)
    if actor is not None:
        record(AUDITED[kind], resource=alert, actor=actor, details={"comment": comment, "episode": alert.episode})
    _broadcast(alert)


def _broadcast(alert: Alert) -> None:
    broadcast_on_commit("alerts", "alert", render.describe(alert))


def _fields(alert: Alert) -> dict[str, str]:
    return matchers.alert_fields(alert.source, alert.key, alert.severity, alert.labels)


# ---------------------------------------------------------------- input


def _name(value: Any, what: str, limit: int) -> str:
    text = str(value).strip() if value is not None else ""
    if not text:
        raise AlertError(f"{what} must not be empty", field=what)
    if len(text) > limit:
        raise AlertError(f"{what} is longer than {limit} characters", field=what)
    return text


def _severity(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in Severity.values:
        raise AlertError(f"unknown severity {value!r}; use one of {', '.join(Severity.values)}", field="severity")
    return text


def _labels(labels: Mapping[str, Any] | None) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise AlertError("labels must be a mapping of names to values", field="labels")
    if len(labels) > MAX_LABELS:
        raise AlertError(f"at most {MAX_LABELS} labels", field="labels")
    cleaned = {}
    for name, value in labels.items():
        name = str(name).strip()
        if not matchers.LABEL_NAME.fullmatch(name):
            raise AlertError(
                f"label name {name!r} must start with a letter or _ and hold letters, digits, _ . : -", field="labels"
            )
        cleaned[name] = str(value)[:500]
    return cleaned
