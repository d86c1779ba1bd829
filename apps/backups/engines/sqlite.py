"""SQLite: the online backup API of the live database, never a copy of its file.

Copying the file of a database in use can catch it half-written (and misses the
WAL); sqlite3's backup API copies a consistent state while other connections keep
writing. The copy is taken in one step (pages=-1): done step by step, every write
by another connection would restart it. Counts are read from that copy, so they
describe exactly what was dumped.
"""

import contextlib
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import DatabaseError, connections

from apps.backups.engines.base import DatabaseEngine
from apps.backups.errors import BackupError

SIDE_FILES = ("-wal", "-shm", "-journal")
# User tables: not SQLite's own (sqlite_sequence, sqlite_stat1...).
TABLES_SQL = (
    r"SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name"
)


class SqliteEngine(DatabaseEngine):
    vendor = "sqlite"

    @contextlib.contextmanager
    def dump(self, alias: str) -> Iterator[BinaryIO]:
        with _scratch_file("dump") as path:
            # The alias's own connection: it also sees an in-memory database (tests), which a new one cannot.
            source = connections[alias]
            source.ensure_connection()
            if source.connection.in_transaction:  # the copy would wait forever for its own write lock
                raise BackupError(f"cannot back up the SQLite database {alias!r} inside a transaction")
            with contextlib.closing(sqlite3.connect(path)) as copy:
                source.connection.backup(copy)
            self._dumped_counts[alias] = self.count_rows(str(path))
            with path.open("rb") as stream:
                yield stream

    def tool_versions(self) -> dict[str, str]:
        return {"sqlite": sqlite3.sqlite_version}

    def restore(self, path: Path, target: str, *, clean: bool) -> None:
        """Replace the whole target database with the file's (a backup always replaces: `clean` is implied)."""
        target_path = self.target_settings(target)["NAME"]
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as source:
                problems = [row[0] for row in source.execute("PRAGMA integrity_check").fetchall()]
                if problems != ["ok"]:
                    raise BackupError(f"the SQLite dump fails its integrity check: {'; '.join(problems[:5])}")
                # file:... names are URIs (a test run's in-memory database is one).
                uri = target_path.startswith("file:")
                with contextlib.closing(sqlite3.connect(target_path, uri=uri)) as destination:
                    source.backup(destination)
        except sqlite3.Error as error:
            raise BackupError(f"SQLite restore into {target_path} failed: {error}") from error

    @contextlib.contextmanager
    def scratch(self, alias: str) -> Iterator[str]:
        with _scratch_file("drill") as path:
            yield str(path)

    def alias_target(self, alias: str) -> str:
        return str(connections[alias].settings_dict["NAME"])

    def count_rows(self, target: str) -> dict[str, int]:
        with self.connect(target) as connection:
            try:
                with connection.cursor() as cursor:
                    cursor.execute(TABLES_SQL)
                    tables = [name for (name,) in cursor.fetchall()]
                    counts = {}
                    for table in tables:
                        cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")  # noqa: S608
                        counts[table] = cursor.fetchone()[0]
                    return counts
            except DatabaseError as error:
                raise BackupError(f"cannot count the rows of {target}: {error}") from error

    def target_settings(self, target: str) -> dict:
        """A file path, or sqlite:///path as in DATABASE_URL."""
        name = target.removeprefix("sqlite://") if target.startswith("sqlite://") else target
        if not name:
            raise BackupError("an SQLite target needs a file path")
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name}


@contextlib.contextmanager
def _scratch_file(purpose: str) -> Iterator[Path]:
    """A new file name under BACKUP_SCRATCH_DIR; the file and SQLite's side files are removed on exit."""
    directory = Path(settings.BACKUP_SCRATCH_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"opsportal_{purpose}_{secrets.token_hex(6)}.sqlite3"
    try:
        yield path
    finally:
        for suffix in ("", *SIDE_FILES):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
