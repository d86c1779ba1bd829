"""The database engine interface: how one database vendor is dumped, counted, restored and given a scratch copy.

A backup trusts a dump only with numbers to check it against: every engine takes
exact per-table row counts from the same state of the database that it dumps, and
can count a restored copy the same way, so a drill compares like with like.
"""

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import ConnectionHandler

from apps.backups.errors import BackupError

# Django-only connection options that make no sense for a short-lived private connection.
PRIVATE_CONNECTION_DROPPED_OPTIONS = ("pool",)


class DatabaseEngine(ABC):
    """One vendor's dump, counts, restore and scratch targets.

    A target is what restore() writes into: a DATABASE_URL (PostgreSQL) or a file path (SQLite).
    """

    vendor: str

    def __init__(self) -> None:
        # Row counts taken in the snapshot of the last dump of each alias (see row_counts()).
        self._dumped_counts: dict[str, dict[str, int]] = {}

    @abstractmethod
    def dump(self, alias: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A readable stream of the dump of `alias`, never held in memory as a whole.

        On a clean exit the tool's exit status is checked: a failed dump raises
        BackupError with the tool's message (secrets redacted), so a truncated
        stream never passes for a backup. Counts of the dumped snapshot are kept for row_counts().
        """

    def row_counts(self, alias: str) -> dict[str, int]:
        """Exact rows per table, from the snapshot (or copy) this engine dumped for `alias`.

        Call it on the engine that ran dump(alias), inside or after the `with`: the counts
        describe exactly what was dumped, never the database as it is a moment later.
        """
        if alias not in self._dumped_counts:
            raise BackupError(f"no dump of {alias!r} to count: row_counts() follows dump()")
        return dict(self._dumped_counts[alias])

    @abstractmethod
    def tool_versions(self) -> dict[str, str]:
        """Versions of the tools that write and read this engine's dumps (for the manifest)."""

    @abstractmethod
    def restore(self, path: Path, target: str, *, clean: bool) -> None:
        """Restore the dump file at `path` into `target`; any error is fatal (BackupError)."""

    @abstractmethod
    def scratch(self, alias: str) -> contextlib.AbstractContextManager[str]:
        """A throwaway target beside `alias` (same server or folder), always removed on exit."""

    @abstractmethod
    def alias_target(self, alias: str) -> str:
        """The target naming the database of `alias` (for an in-place restore)."""

    @abstractmethod
    def count_rows(self, target: str) -> dict[str, int]:
        """Exact rows per table of `target`."""

    def applied_migrations(self, target: str) -> list[list[str]]:
        """[app, name] of every migration recorded in `target`, sorted; [] when it has no django_migrations."""
        with self.connect(target) as connection, connection.cursor() as cursor:
            if "django_migrations" not in connection.introspection.table_names(cursor):
                return []
            cursor.execute("SELECT app, name FROM django_migrations ORDER BY app, name")
            return [[app, name] for app, name in cursor.fetchall()]

    @abstractmethod
    def target_settings(self, target: str) -> dict:
        """A DATABASES entry for `target`."""

    @contextlib.contextmanager
    def connect(self, target: str) -> Iterator[BaseDatabaseWrapper]:
        """A private connection to `target`, closed on exit (never the app's shared connection)."""
        with private_connection(self.target_settings(target)) as connection:
            yield connection


@contextlib.contextmanager
def private_connection(settings_dict: dict) -> Iterator[BaseDatabaseWrapper]:
    """A Django connection of its own to the database `settings_dict` describes, closed on exit.

    Its own connection, so a backup's long snapshot transaction neither joins a
    caller's transaction nor holds a pooled connection, and works from any thread.
    """
    options = {
        key: value
        for key, value in settings_dict.get("OPTIONS", {}).items()
        if key not in PRIVATE_CONNECTION_DROPPED_OPTIONS
    }
    # A handler of its own ("default" is the one alias a handler must have), not the app's `connections`.
    handler = ConnectionHandler({"default": {**settings_dict, "OPTIONS": options, "CONN_MAX_AGE": 0}})
    connection = handler["default"]
    try:
        yield connection
    finally:
        connection.close()
