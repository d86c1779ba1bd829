"""Capture in the database: triggers on registered tables write the audit events.

The application's side of it: before a write, PostgreSQL is told the request
context (a session setting the trigger reads); SQLite asks for it through a
function registered on the connection. After a transaction that wrote audited
rows commits, the new events are sealed into the chain.
"""

import json
import re
from typing import Any

import structlog
from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from apps.audit import chain, registry
from apps.audit.capture import postgresql, sqlite
from apps.audit.sealer import sealer
from apps.audit.services import valid_ip
from apps.core import context

logger = structlog.get_logger(__name__)

WRITE = re.compile(r'^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"([^"]+)"', re.IGNORECASE)


def context_json() -> str:
    """The request context as the triggers read it."""
    ctx = context.current()
    return json.dumps(
        {
            "user_id": ctx.user_id,
            "username": ctx.username or "system",
            "ip": valid_ip(ctx.ip),
            "user_agent": ctx.user_agent[:512],
            "request_id": (ctx.request_id or "")[:128],
            "channel": ctx.channel,
        }
    )


def seal_after_commit() -> None:
    sealer.wake()


class ConnectionHook:
    """An execute wrapper on every connection: context before audited writes, sealing after commits."""

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, ctx: dict) -> Any:
        match = WRITE.match(sql) if isinstance(sql, str) else None
        if match is None:
            return execute(sql, params, many, ctx)
        table, connection = match.group(1), ctx["connection"]
        audited = table in registry.audited_tables()
        if audited and connection.vendor == "postgresql":
            # Before every such write: a setting made in a transaction or savepoint
            # that rolls back is rolled back too, so remembering what was sent is unsafe.
            ctx["cursor"].execute("SELECT set_config('opsportal.audit_context', %s, false)", [context_json()])
        result = execute(sql, params, many, ctx)
        if (audited or table == chain.TABLE) and not chain.sealing():
            self.seal_on_commit(connection)
        return result

    @staticmethod
    def seal_on_commit(connection: BaseDatabaseWrapper) -> None:
        if not connection.in_atomic_block:
            # Autocommit: the statement may still be open (RETURNING rows unread),
            # so sealing waits for the end of the request or task.
            connection.opsportal_seal_pending = True
        elif not any(func is seal_after_commit for _, func, _ in connection.run_on_commit):
            transaction.on_commit(seal_after_commit, using=connection.alias, robust=True)


hook = ConnectionHook()


def seal_pending(**kwargs: Any) -> None:
    """At the end of a request or task: seal what its autocommit writes left unsealed."""
    for connection in connections.all(initialized_only=True):
        if getattr(connection, "opsportal_seal_pending", False):
            connection.opsportal_seal_pending = False
            try:
                seal_after_commit()
            except Exception:  # the periodic sweep seals them; the request itself succeeded
                logger.exception("audit_seal_failed")


def on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    if hook not in connection.execute_wrappers:
        connection.execute_wrappers.append(hook)
    if connection.vendor == "sqlite":
        sqlite.register_functions(connection.connection, context_json)


def install_triggers(using: str = "default") -> None:
    """(Re)install the capture triggers on every registered table; run after each migrate."""
    connection = connections[using]
    module = postgresql if connection.vendor == "postgresql" else sqlite
    with transaction.atomic(using=using), connection.cursor() as cursor:
        for registration in registry.registrations():
            for statement in module.trigger_sql(registration):
                cursor.execute(statement)
