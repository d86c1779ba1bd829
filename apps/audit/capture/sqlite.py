"""SQLite: three triggers per registered table, calling a function of the portal's own.

The trigger hands the old and new row (as JSON) to opsportal_audit_event(),
registered on each connection, which returns the event to insert: the same
diff, redaction and naming as PostgreSQL's trigger function, in Python. A
connection without the function (a sqlite3 shell) cannot write audited tables
at all, so there is no silent path here either.
"""

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apps.audit import registry
from apps.audit.registry import Registration

FIELDS = (
    "timestamp", "actor_id", "actor_username", "action", "outcome", "resource_type", "resource_id",
    "resource_repr", "changes", "details", "ip", "user_agent", "request_id",
)  # fmt: skip
VERBS = {
    "admin": {"INSERT": "admin.add", "UPDATE": "admin.change", "DELETE": "admin.delete"},
    "": {"INSERT": "model.create", "UPDATE": "model.update", "DELETE": "model.delete"},
}


def trigger_sql(registration: Registration) -> list[str]:
    def row(alias: str) -> str:
        pairs = ", ".join(f"'{column}', {alias}.\"{column}\"" for column in registration.columns)
        return f"json_object({pairs})"

    statements = []
    for operation, old, new in (("INSERT", "NULL", row("NEW")), ("UPDATE", row("OLD"), row("NEW")),
                                ("DELETE", row("OLD"), "NULL")):  # fmt: skip
        name = f"opsportal_audit_{registration.table}_{operation.lower()}"
        extract = ", ".join(f"json_extract(e, '$.{field}')" for field in FIELDS)
        statements += [
            f'DROP TRIGGER IF EXISTS "{name}"',
            f'CREATE TRIGGER "{name}" AFTER {operation} ON "{registration.table}" FOR EACH ROW BEGIN '  # noqa: S608 - names from model metadata
            f"INSERT INTO audit_auditevent ({', '.join(FIELDS)}, prev_hash, hash) "
            f"SELECT {extract}, '', '' FROM "
            f"(SELECT opsportal_audit_event('{registration.label}', '{operation}', {old}, {new}) AS e) "
            f"WHERE e IS NOT NULL; END",
        ]
    return statements


def event(label: str, operation: str, old_json: str | None, new_json: str | None, context: dict) -> dict | None:
    """The audit event for one row change, or None when nothing audited changed."""
    registration = registry.by_label(label)
    old = json.loads(old_json) if old_json else {}
    new = json.loads(new_json) if new_json else {}
    redacted = registration.redacted if registration else frozenset()
    ignored = registration.ignored if registration else frozenset()
    changes = {}
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if key not in ignored and (operation != "UPDATE" or before != after):
            changes[key] = [_shown(key, before, redacted), _shown(key, after, redacted)]
    if operation == "UPDATE" and not changes:
        return None
    if operation == "UPDATE" and registration and registration.password_column in changes:
        action = "auth.password_change"
    else:
        action = VERBS["admin" if context.get("channel") == "admin" else ""][operation]
    row = new or old
    pk = registration.pk_column if registration else "id"
    text = row.get(registration.repr_column) if registration else None
    return _event(
        context,
        action=action,
        resource_type=label,
        resource_id="" if row.get(pk) is None else str(row.get(pk)),
        resource_repr="" if text is None else str(text)[:200],
        changes=changes,
    )


def _event(context: dict, **fields: Any) -> dict:
    return {
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
        "actor_id": context.get("user_id"),
        "actor_username": context.get("username") or "system",
        "outcome": "success",
        "resource_id": "",
        "resource_repr": "",
        "changes": {},
        "details": {},
        "ip": context.get("ip"),
        "user_agent": context.get("user_agent") or "",
        "request_id": context.get("request_id") or "",
        **fields,
    }


def _shown(key: str, value: Any, redacted: frozenset[str]) -> Any:
    return "***" if key in redacted and value is not None else value


def register_functions(raw: sqlite3.Connection, context_json: Callable[[], str]) -> None:
    def audit_event(label: str, operation: str, old_json: str | None, new_json: str | None) -> str | None:
        context = json.loads(context_json())
        try:
            result = event(label, operation, old_json, new_json, context)
        except Exception as exc:  # never fail the caller's write: record that capture went wrong instead
            result = _event(context, action="audit.capture_error", outcome="failure", resource_type=label,
                            details={"error": repr(exc)[:500], "operation": operation})  # fmt: skip
        return None if result is None else json.dumps(result, default=str)

    raw.create_function("opsportal_audit_event", 4, audit_event)
