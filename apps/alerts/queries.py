"""The statements alert_fire() runs on every call, written out once instead of built by the ORM per call.

Producers call alert_fire() for every bad reading (health checks and metric
rules re-fire every tick), so its statements are the portal's hottest path.
Building a query with the ORM costs about 1 ms of CPU; executing one that is
already written costs a tenth of that. The statements stay portable
(PostgreSQL and SQLite 3.35+: `ON CONFLICT`, `RETURNING`), their parameters
are prepared by each field as the ORM would (`get_db_prep_save`), and rows
come back as model instances through the converters a queryset would apply
(`Manager.raw()` does the same, at half a millisecond a query). Everything
else goes through the ORM.
"""

import functools
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.dateparse import parse_datetime

from apps.alerts.models import Alert, Route, RoutingStamp, Silence, State, Transition

M = TypeVar("M", bound=models.Model)

# What a fire may change, and what a new alert is inserted with (every column without a NULL default).
CONTENT = ("severity", "summary", "description", "labels", "value")
NEW = ("source", "key", *CONTENT, "state", "episode", "fire_count", "started_at", "last_fired_at", "escalation_step")
NEW += ("updated_at", "route", "group_key", "silenced_by")
TIMELINE = ("alert", "episode", "kind", "at", "actor", "actor_name", "comment", "details")


def _columns(model: type[models.Model], names: Sequence[str] | None = None) -> str:
    """The columns of these fields (default: all, in the order rows are read back), quoted."""
    fields = [model._meta.get_field(name) for name in names] if names else model._meta.concrete_fields
    return ", ".join(f'"{field.column}"' for field in fields)


# Double-quoted names read the same to PostgreSQL and SQLite. Constants: no input reaches the text.

# A new alert's first notification: at the end of its group_wait, or with the group's notification if one is
# waiting (whichever is first), but not before a silence over it ends. Parameters: route, group, "firing",
# the end of group_wait (NULL without a route), the silence's end (or NULL).
_NOTIFY_AT = (
    "(SELECT MAX(t) FROM (SELECT (SELECT MIN(w) FROM ("
    'SELECT "notify_at" AS w FROM "alerts_alert" WHERE "route_id" = %s AND "group_key" = %s AND "state" = %s'
    ' AND "notify_at" IS NOT NULL AND "silenced_by_id" IS NULL UNION ALL SELECT %s) AS waiting) AS t'
    " UNION ALL SELECT %s) AS bounded)"
)
# Insert a new alert, or count the fire of the open one of the same severity; no row when it is resolved or its
# severity changed (those take the ORM path). The routing stamp comes back with the row.
_FIRE = (
    f'INSERT INTO "alerts_alert" ({_columns(Alert, (*NEW, "notify_at"))})'  # noqa: S608 - constant
    f" VALUES ({', '.join(['%s'] * len(NEW))}, {_NOTIFY_AT})"
    ' ON CONFLICT ("source", "key") DO UPDATE SET '
    + ", ".join(f'"{name}" = excluded."{name}"' for name in (*CONTENT, "last_fired_at", "updated_at"))
    + ', "fire_count" = "alerts_alert"."fire_count" + 1'  # noqa: S608 - constant
    ' WHERE "alerts_alert"."state" <> %s AND "alerts_alert"."severity" = excluded."severity"'
    f' RETURNING {_columns(Alert)}, (SELECT "stamp" FROM "alerts_routingstamp" WHERE "id" = 1)'
)
_STAMP = 'SELECT "stamp" FROM "alerts_routingstamp" WHERE "id" = 1'
_NEW_STAMP = (
    'INSERT INTO "alerts_routingstamp" ("id", "stamp") VALUES (1, %s)'
    ' ON CONFLICT ("id") DO UPDATE SET "stamp" = excluded."stamp"'
)
_INSERT_TIMELINE = f'INSERT INTO "alerts_transition" ({_columns(Transition, TIMELINE)}) VALUES '  # noqa: S608
_ROW = f"({', '.join(['%s'] * len(TIMELINE))})"
_ROUTES = f'SELECT {_columns(Route)} FROM "alerts_route" ORDER BY "is_default", "position", "id"'  # noqa: S608
_SILENCES = (
    f'SELECT {_columns(Silence)} FROM "alerts_silence" WHERE ("repeat" = \'\' AND "ends_at" > %s)'  # noqa: S608
    ' OR ("repeat" <> \'\' AND ("repeat_until" IS NULL OR "repeat_until" > %s))'
)
_GROUP_WAITING = (
    'SELECT MIN("notify_at") FROM "alerts_alert" WHERE "route_id" = %s AND "group_key" = %s AND "state" = %s'
    ' AND "notify_at" IS NOT NULL AND "silenced_by_id" IS NULL AND "id" <> %s'
)


def fire(values: Mapping[str, Any], *, first: datetime | None, until: datetime | None) -> tuple[Alert | None, Any]:
    """Insert the alert (values of every name in NEW) or count the fire of the open one; and the routing stamp.

    The alert is None when it is resolved or its severity changed; a new one has
    fire_count 1 (a counted fire, at least 2). `first` and `until` bound its first
    notification (see _NOTIFY_AT).
    """
    db = _db()
    params = _prepared(db, Alert, NEW, [values[name] for name in NEW])
    params += [_key(values["route"]), values["group_key"], State.FIRING]
    params += [*_prepared(db, Alert, ("notify_at", "notify_at"), [first, until]), State.RESOLVED]
    with db.cursor() as cursor:
        cursor.execute(_FIRE, params)
        row = cursor.fetchone()
    if row is None:
        return None, None
    return _instance(db, Alert, row[:-1]), _stamp(row[-1])


def routing_stamp() -> Any:
    """The stamp routes and silences carry now (None until the first change)."""
    with _db().cursor() as cursor:
        cursor.execute(_STAMP)
        row = cursor.fetchone()
    return _stamp(row[0]) if row else None


def new_routing_stamp() -> None:
    """Say that routes or silences changed (in the caller's transaction)."""
    db = _db()
    with db.cursor() as cursor:
        cursor.execute(_NEW_STAMP, _prepared(db, RoutingStamp, ("stamp",), [uuid.uuid4()]))


def add_transitions(rows: Sequence[Mapping[str, Any]]) -> None:
    """Append timeline lines (values of every name in TIMELINE) in one statement."""
    db = _db()
    params = [value for row in rows for value in _prepared(db, Transition, TIMELINE, [row[name] for name in TIMELINE])]
    with db.cursor() as cursor:
        cursor.execute(_INSERT_TIMELINE + ", ".join([_ROW] * len(rows)), params)


def routes() -> list[Route]:
    """Every route, in the order they are tried (the default last)."""
    return _instances(Route, _ROUTES, [])


def silences_not_over(now: datetime) -> list[Silence]:
    """The silences that cover, or may later cover, an alert: one-off windows not yet over, repeats not ended."""
    at = _prepared(_db(), Silence, ("ends_at",), [now])[0]
    return _instances(Silence, _SILENCES, [at, at])


def group_waiting(route_id: int, group_key: str, alert_id: int) -> datetime | None:
    """When the group's first notification is due, if one is waiting (for the alert to go out with it)."""
    with _db().cursor() as cursor:
        cursor.execute(_GROUP_WAITING, [route_id, group_key, State.FIRING, alert_id])
        (first,) = cursor.fetchone()
    if isinstance(first, str):  # SQLite keeps times as text, in UTC
        return parse_datetime(first).replace(tzinfo=UTC)
    return first


def _db() -> BaseDatabaseWrapper:
    """This thread's connection itself: the `connection` proxy costs a context-local lookup per attribute."""
    return connections[DEFAULT_DB_ALIAS]


def _prepared(db: BaseDatabaseWrapper, model: type[models.Model], names: Sequence[str], values: Sequence[Any]) -> list:
    """The values as the database takes them, each prepared by its field as the ORM would (JSON, times, keys)."""
    fields = _fields(model, tuple(names))
    return [field.get_db_prep_save(_key(value), db) for field, value in zip(fields, values, strict=True)]


@functools.cache
def _fields(model: type[models.Model], names: tuple[str, ...]) -> list[models.Field]:
    return [model._meta.get_field(name) for name in names]


def _key(value: Any) -> Any:
    return value.pk if isinstance(value, models.Model) else value


def _instances(model: type[M], sql: str, params: Sequence[Any]) -> list[M]:
    """Run sql, whose rows hold the model's columns in order, and make instances of them."""
    db = _db()
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return [_instance(db, model, row) for row in cursor.fetchall()]


def _instance(db: BaseDatabaseWrapper, model: type[M], row: Sequence[Any]) -> M:
    """An instance of a row of the model's columns in order, converted as a queryset would."""
    names, converters = _loader(model, db.vendor)
    values = list(row)
    for index, column, functions in converters:
        for function in functions:
            values[index] = function(values[index], column, db)
    return model.from_db(db.alias, names, values)


def _stamp(value: Any) -> Any:
    return RoutingStamp._meta.get_field("stamp").to_python(value) if value is not None else None


@functools.cache
def _loader(model: type[models.Model], vendor: str) -> tuple[list[str], list[tuple[int, Any, list[Callable]]]]:
    """The model's attribute names in column order, and the converters (backend's, then field's) per column."""
    fields = model._meta.concrete_fields
    converters = []
    for index, field in enumerate(fields):
        column = field.get_col(model._meta.db_table)
        db = _db()
        functions = db.ops.get_db_converters(column) + field.get_db_converters(db)
        if functions:
            converters.append((index, column, functions))
    return [field.attname for field in fields], converters
