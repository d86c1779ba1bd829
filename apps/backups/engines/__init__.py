"""Database engines by vendor: PostgreSQL (pg_dump / pg_restore) and SQLite (the online backup API)."""

from django.db import connections

from apps.backups.engines.base import DatabaseEngine, private_connection
from apps.backups.engines.postgres import PostgresEngine
from apps.backups.engines.sqlite import SqliteEngine
from apps.backups.errors import BackupError

__all__ = ["DatabaseEngine", "engine_for", "engine_of", "private_connection"]

ENGINES: dict[str, type[DatabaseEngine]] = {"postgresql": PostgresEngine, "sqlite": SqliteEngine}


def engine_of(vendor: str) -> DatabaseEngine:
    """The engine for a vendor as Django names it (connection.vendor, a manifest's "engine")."""
    if vendor not in ENGINES:
        raise BackupError(f"cannot back up a {vendor} database: only PostgreSQL and SQLite are supported")
    return ENGINES[vendor]()


def engine_for(alias: str) -> DatabaseEngine:
    """The engine for settings.DATABASES[alias]."""
    if alias not in connections.settings:
        raise BackupError(f"unknown database {alias!r}: not in settings.DATABASES")
    return engine_of(connections[alias].vendor)
