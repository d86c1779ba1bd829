"""record(): write an audit event in the caller's transaction."""

import datetime
import decimal
import ipaddress
import json
import math
import uuid
from collections.abc import Mapping
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection, models
from django.utils import timezone

from apps.audit import chain
from apps.audit.models import Outcome
from apps.core import context
from apps.core.broadcast import broadcast_on_commit
from apps.core.redaction import redact

MAX_TEXT = 4096  # characters of any one string value
MAX_JSON = 65536  # characters of details or changes as a whole
MAX_DEPTH = 10


def record(
    action: str,
    *,
    resource: models.Model | tuple[str, str, str] | None = None,
    changes: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
    outcome: str = Outcome.SUCCESS,
    actor: AbstractBaseUser | None = None,
) -> int:
    """Record that `action` happened, in the caller's transaction (a rollback leaves no event); returns its id.

    Actor, client IP, user agent and request id come from the request context
    unless `actor` is given. `resource` is a model instance or a
    (type, id, text) triple. `changes` maps field -> [before, after]. Values of
    any kind are accepted: what JSON cannot hold is converted, what is too big
    is cut with a marker, and secrets are redacted; recording never fails
    because of what it was given.
    """
    ctx = context.current()
    now = timezone.now()
    resource_type, resource_id, resource_repr = _resource(resource)
    if actor is not None:
        actor_id, actor_username = actor.pk, actor.get_username()
    else:
        actor_id, actor_username = ctx.user_id, ctx.username or "system"
    values = [
        connection.ops.adapt_datetimefield_value(now),
        actor_id,
        actor_username[:150],
        action[:64],
        outcome if outcome in Outcome.values else Outcome.FAILURE,
        resource_type[:100],
        resource_id[:64],
        resource_repr[:200],
        json.dumps(_bounded(redact(sanitize(dict(changes or {})))), ensure_ascii=False),
        json.dumps(_bounded(redact(sanitize(dict(details or {})))), ensure_ascii=False),
        valid_ip(ctx.ip),
        ctx.user_agent[:512],
        (ctx.request_id or "")[:128],
    ]
    # Straight SQL, not Model.save(): every request and task that changes anything
    # comes through here, and the ORM's insert costs three times the CPU.
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, values)
        event_id = cursor.fetchone()[0]
    # The live audit tail; cheap: the publisher batches, and sends nothing while nobody listens.
    live = live_event(event_id, now, values[2], values[3], (values[5], values[6], values[7]), values[10], values[12])
    broadcast_on_commit("audit", "event", live)
    return event_id


def live_event(
    event_id: int,
    at: datetime.datetime,
    actor: str,
    action: str,
    resource: tuple[str, str, str],
    ip: str | None,
    request_id: str,
) -> dict[str, Any]:
    """An event as the dashboard's audit tail shows it (live frames and snapshots alike)."""
    kind, ident, text = resource
    return {
        "id": event_id,
        "at": at.isoformat(),
        "actor": actor,
        "action": action,
        "object": text or f"{kind} {ident}".strip(),
        "ip": ip,
        "request_id": request_id,
    }


_COLUMNS = ", ".join(f'"{name}"' for name in chain.HASHED_FIELDS)
_PLACEHOLDERS = ", ".join(["%s"] * len(chain.HASHED_FIELDS))
# The table's name quoted, as the ORM writes it: the capture hook seals after such inserts.
_INSERT = f'INSERT INTO "{chain.TABLE}" ({_COLUMNS}) VALUES ({_PLACEHOLDERS}) RETURNING id'  # noqa: S608 - constants


def valid_ip(text: str | None) -> str | None:
    """The address in canonical form, or None for anything that is not an IP address."""
    try:
        return str(ipaddress.ip_address(text)) if text else None
    except ValueError:
        return None


def _resource(resource: models.Model | tuple[str, str, str] | None) -> tuple[str, str, str]:
    if resource is None:
        return "", "", ""
    if isinstance(resource, models.Model):
        return resource._meta.label_lower, str(resource.pk), _text(resource)
    kind, ident, text = resource
    return str(kind), str(ident), str(text)


def sanitize(value: Any, *, depth: int = 0) -> Any:
    """value as JSON can hold it: converted where needed, strings cut at MAX_TEXT, nesting at MAX_DEPTH."""
    if depth > MAX_DEPTH:
        return "…[nested too deep]"
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else f"{value[:MAX_TEXT]}…[truncated {len(value) - MAX_TEXT} chars]"
    if isinstance(value, Mapping):
        return {str(key)[:200]: sanitize(item, depth=depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [sanitize(item, depth=depth + 1) for item in value]
    return sanitize(_convert(value), depth=depth + 1)


def _convert(value: Any) -> Any:
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return {"bytes": len(data), "hex": data[:64].hex()}
    if isinstance(value, models.Model):
        return {"type": value._meta.label_lower, "id": str(value.pk), "text": _text(value)}
    return _text(value, repr)


def _text(value: Any, render: Any = str) -> str:
    try:
        return render(value)
    except Exception:  # a broken __str__/__repr__ must not break the caller's request
        return f"<{type(value).__name__}>"


def _bounded(value: dict) -> dict:
    text = json.dumps(value, ensure_ascii=False)
    if len(text) <= MAX_JSON:
        return value
    return {"truncated": True, "characters": len(text), "preview": text[: MAX_JSON // 16]}


def audit_prune(*, older_than: datetime.timedelta, dry_run: bool = False, batch: int = 10_000) -> dict:
    """Remove sealed events older than older_than from the start of the chain, in batches.

    Each batch leaves a checkpoint, so what remains still verifies; the prune
    itself is recorded. Returns what was (or, with dry_run, would be) removed.
    """
    cutoff = timezone.now() - older_than
    plan = chain.prune_plan(cutoff)
    summary = {"cutoff": cutoff.isoformat(), "events": plan.events, "upto_seq": plan.upto_seq, "dry_run": dry_run}
    if dry_run or plan.events == 0:
        return {**summary, "removed": 0}
    current, removed = chain.head_start(), 0
    while current < plan.upto_seq:
        upto = min(current + batch, plan.upto_seq)
        removed += chain.prune(upto, min_age=older_than)
        current = upto
    record("audit.prune", details={"older_than_days": older_than.days, "removed": removed, "upto_seq": upto})
    chain.seal()
    return {**summary, "removed": removed}
