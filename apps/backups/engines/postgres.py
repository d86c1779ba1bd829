"""PostgreSQL: pg_dump -Fc of one exported snapshot, streamed; pg_restore with errors fatal; scratch databases.

The counts and the dump see the same data: a REPEATABLE READ transaction exports
its snapshot, counts every table, and stays open while `pg_dump --snapshot` dumps
exactly that snapshot. Connection settings reach the tools through the
environment (PGPASSWORD...), never the command line, where any user could read them.
"""

import contextlib
import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO
from urllib.parse import quote, urlencode, urlsplit

import environ
import structlog
from django.conf import settings
from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.postgresql.client import DatabaseClient

from apps.backups.engines.base import DatabaseEngine, private_connection
from apps.backups.errors import BackupError
from apps.core.redaction import redact

logger = structlog.get_logger(__name__)

# Every table pg_dump dumps: user schemas, not the catalogs, not tables an extension owns.
TABLES_SQL = r"""
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (
    SELECT 1 FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
  )
ORDER BY 1, 2
"""
STDERR_LIMIT = 4000  # characters of a tool's message kept in the error
VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+(?:\.\d+)*)")
SCRATCH_PREFIX = "opsportal_drill_"
URL_SCHEMES = ("postgres", "postgresql", "pgsql")


class PostgresEngine(DatabaseEngine):
    vendor = "postgresql"

    @contextlib.contextmanager
    def dump(self, alias: str) -> Iterator[BinaryIO]:
        settings_dict = connections[alias].settings_dict
        with private_connection(settings_dict) as connection, _cursor(connection, alias) as cursor:
            cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cursor.execute("SELECT pg_export_snapshot()")
            (snapshot,) = cursor.fetchone()
            self._dumped_counts[alias] = _count(connection, cursor)
            command = [settings.BACKUP_PG_DUMP, "-Fc", "-Z0", "--no-owner", f"--snapshot={snapshot}"]
            with _run(command, settings_dict, stdout=subprocess.PIPE) as process:
                yield process.stdout

    def tool_versions(self) -> dict[str, str]:
        return {"pg_dump": _version(settings.BACKUP_PG_DUMP), "pg_restore": _version(settings.BACKUP_PG_RESTORE)}

    def restore(self, path: Path, target: str, *, clean: bool) -> None:
        """pg_restore in one transaction: on the first error nothing of the dump is left in the target."""
        settings_dict = self.target_settings(target)
        command = [settings.BACKUP_PG_RESTORE, "--exit-on-error", "--single-transaction", "--no-owner"]
        command += ["--no-privileges", *(["--clean", "--if-exists"] if clean else [])]
        command += ["--dbname", settings_dict["NAME"], str(path)]
        with _run(command, settings_dict, stdout=subprocess.DEVNULL):
            pass

    @contextlib.contextmanager
    def scratch(self, alias: str) -> Iterator[str]:
        settings_dict = connections[alias].settings_dict
        name = SCRATCH_PREFIX + secrets.token_hex(6)
        with private_connection(settings_dict) as connection, _cursor(connection, alias) as cursor:
            try:
                cursor.execute(f"CREATE DATABASE {connection.ops.quote_name(name)} TEMPLATE template0")
            except DatabaseError as error:
                raise BackupError(f"cannot create a scratch database (CREATEDB needed): {_clean(error)}") from error
        try:
            yield _url({**settings_dict, "NAME": name})
        except BaseException:
            _drop(settings_dict, name, raising=False)
            raise
        _drop(settings_dict, name, raising=True)

    def alias_target(self, alias: str) -> str:
        return _url(connections[alias].settings_dict)

    def count_rows(self, target: str) -> dict[str, int]:
        with self.connect(target) as connection, _cursor(connection, "the target") as cursor:
            return _count(connection, cursor)

    def target_settings(self, target: str) -> dict:
        parts = urlsplit(target)
        if parts.scheme not in URL_SCHEMES or not parts.hostname or not parts.path.strip("/"):
            raise BackupError(f"not a PostgreSQL target: {redact(target)!r} (postgres://USER[:PASSWORD]@HOST/NAME)")
        return {"OPTIONS": {}, **environ.Env.db_url_config(target)}


@contextlib.contextmanager
def _cursor(connection: BaseDatabaseWrapper, what: str) -> Iterator:
    """A cursor, with a failed connection reported as BackupError in an operator's words."""
    try:
        cursor = connection.cursor()
    except DatabaseError as error:
        raise BackupError(f"cannot connect to the database of {what}: {_clean(error)}") from error
    with cursor:
        yield cursor


def _count(connection: BaseDatabaseWrapper, cursor) -> dict[str, int]:
    """Exact rows of every table (COUNT(*): statistics are estimates), named schema.table outside public."""
    cursor.execute(TABLES_SQL)
    counts = {}
    for schema, table in cursor.fetchall():
        quoted = f"{connection.ops.quote_name(schema)}.{connection.ops.quote_name(table)}"
        cursor.execute(f"SELECT COUNT(*) FROM {quoted}")  # noqa: S608 (names from the catalog, quoted)
        counts[table if schema == "public" else f"{schema}.{table}"] = cursor.fetchone()[0]
    return counts


def _drop(settings_dict: dict, name: str, *, raising: bool) -> None:
    """Drop a scratch database, even with sessions still open in it (WITH FORCE)."""
    try:
        with private_connection(settings_dict) as connection, _cursor(connection, "the scratch server") as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {connection.ops.quote_name(name)} WITH (FORCE)")
    except (DatabaseError, BackupError) as error:
        logger.error("backup_scratch_drop_failed", database=name, error=_clean(error))
        if raising:
            raise BackupError(f"cannot drop the scratch database {name}: {_clean(error)}") from error


def _url(settings_dict: dict) -> str:
    """A postgres:// URL for a DATABASES entry (the target form restore() and count_rows() take)."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = settings_dict.get("PASSWORD") or ""
    credentials = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "localhost"
    host = f"[{host}]" if ":" in host else host
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    options = {k: v for k, v in settings_dict.get("OPTIONS", {}).items() if isinstance(v, str | int)}
    query = f"?{urlencode(options)}" if options else ""
    return f"postgres://{credentials}{host}{port}/{quote(settings_dict['NAME'], safe='')}{query}"


def _environment(settings_dict: dict) -> dict[str, str]:
    """The tool's environment: ours without stray PG* variables, plus the connection (password included)."""
    _, connection = DatabaseClient.settings_to_cmd_args_env(settings_dict, [])
    wanted = {"PGHOST": "HOST", "PGPORT": "PORT", "PGUSER": "USER", "PGDATABASE": "NAME"}
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    environment |= {key: str(settings_dict[name]) for key, name in wanted.items() if settings_dict.get(name)}
    return environment | (connection or {})


@contextlib.contextmanager
def _run(command: list[str], settings_dict: dict, *, stdout: int) -> Iterator[subprocess.Popen]:
    """Run a PostgreSQL tool; a non-zero exit (or an error in the `with` body) fails with its stderr."""
    tool = Path(command[0]).name
    with tempfile.TemporaryFile() as stderr:  # a file, not a pipe: a chatty tool cannot block on it
        try:
            process = subprocess.Popen(  # noqa: S603 (a configured tool, arguments as a list)
                command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=_environment(settings_dict)
            )
        except OSError as error:
            hint = "see BACKUP_PG_DUMP / BACKUP_PG_RESTORE"
            raise BackupError(f"cannot run {command[0]}: {error.strerror} ({hint})") from error
        try:
            yield process
        except BaseException:
            process.kill()
            raise
        finally:
            if process.stdout is not None:
                process.stdout.close()  # a reader that stopped early makes the tool fail (SIGPIPE), never hang
            process.wait()
        if process.returncode != 0:
            message = _clean(_tail(stderr), settings_dict.get("PASSWORD"))
            raise BackupError(f"{tool} failed (exit status {process.returncode}): {message}")


def _tail(stream: IO[bytes]) -> str:
    stream.seek(0, os.SEEK_END)
    stream.seek(max(0, stream.tell() - STDERR_LIMIT))
    return stream.read().decode("utf-8", "replace").strip() or "no message"


def _clean(error: object, password: str | None = None) -> str:
    """A message fit for an operator's eyes and the logs: secrets redacted, the password if it slipped in."""
    text = redact(str(error)).strip()
    return text.replace(password, "***") if password else text


def _version(tool: str) -> str:
    try:
        output = subprocess.run(  # noqa: S603 (a configured tool, arguments as a list)
            [tool, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise BackupError(f"cannot run {tool} --version: {error}") from error
    match = VERSION.search(output)
    if match is None:
        raise BackupError(f"{tool} --version printed no PostgreSQL version: {output.strip()[:200]!r}")
    return match.group(1)
