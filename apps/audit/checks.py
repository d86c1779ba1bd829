"""Database checks (run by `manage.py check --database default`): can the audit trail hold?"""

from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import connections


@register(Tags.database)
def audit_database(app_configs: Any, databases: list[str] | None = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for alias in databases or []:
        connection = connections[alias]
        if connection.vendor == "postgresql":
            messages += _postgresql(connection)
        elif connection.vendor == "sqlite":
            messages += _sqlite(connection)
    return messages


def _postgresql(connection: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    if connection.pg_version < 140000:
        messages.append(Error("The audit trail needs PostgreSQL 14 or newer.", id="opsportal.E101"))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT r.rolsuper, pg_has_role(current_user, c.relowner, 'USAGE') FROM pg_roles r, pg_class c "
            "WHERE r.rolname = current_user AND c.relname = 'audit_auditevent'"
        )
        row = cursor.fetchone()
    if row and any(row):
        messages.append(Warning(
            "The portal's database role is a superuser or owns the audit table: it could switch the "
            "append-only guards off.",
            hint="Run the portal as a role with the grants `manage.py audit grants ROLE` prints.",
            id="opsportal.W101",
        ))  # fmt: skip
    return messages


def _sqlite(connection: Any) -> list[CheckMessage]:
    with connection.cursor() as cursor:
        try:
            cursor.execute("SELECT json_object('a', 1)")
        except Exception:
            return [Error("The audit trail needs SQLite with JSON functions (3.38 or newer).", id="opsportal.E102")]
    return []
