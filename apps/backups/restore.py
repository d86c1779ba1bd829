"""Restore a backup: into an alternate database by default, in place only when asked, never from bytes unchecked.

The order is the safety: every artifact's checksum is verified before anything is
written to a target; each artifact is decrypted and decompressed into a verified
temporary file (never piped into pg_restore, which would have restored half a dump
by the time a bad byte showed up); a backup taken with other migrations than the
code's is refused unless forced; and an in-place restore first takes a backup of
what it is about to overwrite.
"""

import contextlib
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.management.color import no_style
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader

from apps.audit.models import Outcome
from apps.audit.services import record
from apps.backups import manifest, pipeline, services
from apps.backups.engines import engine_for, engine_of
from apps.backups.engines import files as file_engine
from apps.backups.errors import BackupError
from apps.backups.models import SCHEDULER_FIELDS, Backup, BackupPolicy, Status, Trigger
from apps.backups.progress import Listener, Progress
from apps.backups.storage import Storage, get_storage
from apps.core.redaction import redact

logger = structlog.get_logger(__name__)

Report = Callable[[str, int, int | None], None]


@dataclass
class RestoreResult:
    backup_id: int
    in_place: bool
    databases: list[str] = field(default_factory=list)  # aliases of the restored database artifacts
    files: dict | None = None  # the extract's summary, when files were restored
    # The pre-restore backup (its row is gone after an in-place restore of the portal's own database: the
    # restored database predates it; its files stay, at this location).
    pre_restore_backup_id: int | None = None
    pre_restore_location: str = ""
    migrations_differ: bool = False  # restored anyway (force)


def restore(
    backup: Backup,
    *,
    target: str | None = None,
    in_place: bool = False,
    force: bool = False,
    actor: AbstractBaseUser | None = None,
    progress: Listener | None = None,
    identity: str | None = None,
    files_root: Path | None = None,
) -> RestoreResult:
    """Restore `backup` into `target` (a DATABASE_URL or SQLite path), or in place; audited either way.

    Files are restored in place (to their recorded paths) or under `files_root`,
    never otherwise. `identity` is the age identity text (default: BACKUP_IDENTITY_FILE).
    Raises BackupError (IntegrityError for bad bytes) with nothing written to the target
    when a check fails; a failing restore tool is fatal too.
    """
    report = Progress("restore", policy=backup.policy.name, backup_id=backup.pk, listener=progress)
    result = RestoreResult(backup_id=backup.pk, in_place=in_place)
    try:
        _check_request(backup, target=target, in_place=in_place, files_root=files_root)
        storage = get_storage(backup.storage)
        data = load_verified(backup, storage, report)
        with_files = in_place or files_root is not None
        artifacts = [artifact for artifact in data["artifacts"] if artifact["kind"] == "database" or with_files]
        result.migrations_differ = _check_migrations(data, force=force)
        with unpacked(backup, storage, artifacts, identity=identity, progress=report) as paths:
            if in_place:
                taken = _pre_restore_backup(backup, actor)
                result.pre_restore_backup_id, result.pre_restore_location = taken.pk, taken.location
            records = _records() if in_place else ([], [])
            _restore_databases(artifacts, paths, target=target, in_place=in_place, result=result, progress=report)
            if "default" in result.databases and in_place:
                _carry_over(records)
            if with_files:
                result.files = _restore_files(artifacts, paths, root=None if in_place else files_root)
    except Exception as error:
        _audit(backup, result, target, actor, error=str(error) or type(error).__name__)
        report.finish(Status.FAILED, str(error))
        raise
    _audit(backup, result, target, actor)
    report.finish(Status.SUCCEEDED)
    return result


def load_verified(backup: Backup, storage: Storage, progress: Report) -> dict:
    """The stored manifest (checked against its copy and the row), each artifact re-read and checked."""
    data = manifest.load(storage, backup.location, sha256=backup.manifest_sha256)
    artifacts = data["artifacts"]
    total, done = sum(artifact["size"] for artifact in artifacts), 0
    for artifact in artifacts:
        progress("check", done, total)
        pipeline.check(storage, _key(backup, artifact), artifact["sha256"], artifact["size"])
        done += artifact["size"]
    progress("check", done, total)
    return data


@contextlib.contextmanager
def unpacked(
    backup: Backup, storage: Storage, artifacts: list[dict], *, identity: str | None, progress: Report
) -> Iterator[dict[str, Path]]:
    """Each artifact decrypted and decompressed into a verified file (by artifact name), removed on exit."""
    folder = Path(settings.BACKUP_SCRATCH_DIR) / f"restore-{backup.pk}-{secrets.token_hex(4)}"
    folder.mkdir(parents=True)
    try:
        paths = {}
        for artifact in artifacts:
            progress(phase(artifact), 0, artifact["raw_size"])
            dest = folder / artifact["name"].split(".zst")[0]
            key = _key(backup, artifact)
            paths[artifact["name"]] = pipeline.unpack_verified(
                storage, key, artifact["sha256"], artifact["size"], dest, identity=identity
            )
        yield paths
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def code_migrations() -> list[list[str]]:
    """[app, name] of every migration the installed code has, sorted (the manifest's form)."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return sorted([app, name] for app, name in loader.disk_migrations)


def migration_difference(recorded: list[list[str]], expected: list[list[str]]) -> str:
    """'' when equal, else what is only on each side (a few of each), for an operator."""
    ours, theirs = {tuple(item) for item in recorded}, {tuple(item) for item in expected}
    only_recorded, only_expected = sorted(ours - theirs), sorted(theirs - ours)
    parts = [
        f"{label}: {', '.join('.'.join(item) for item in items[:5])}{' ...' if len(items) > 5 else ''}"
        for label, items in (("only in the backup", only_recorded), ("only in the code", only_expected))
        if items
    ]
    return "; ".join(parts)


def _check_request(backup: Backup, *, target: str | None, in_place: bool, files_root: Path | None) -> None:
    if backup.status != Status.SUCCEEDED:
        raise BackupError(f"backup {backup.pk} cannot be restored: its status is {backup.status}")
    if backup.pruned_at is not None:
        raise BackupError(f"backup {backup.pk} cannot be restored: retention deleted its files")
    if in_place and (target or files_root):
        raise BackupError("restore either in place or into a target, not both")
    if not in_place and not target and files_root is None:
        raise BackupError("say where to restore: a target database URL (--target) or in place (--in-place)")


def _check_migrations(data: dict, *, force: bool) -> bool:
    difference = migration_difference(data.get("migrations", []), code_migrations())
    if difference and not force:
        raise BackupError(f"the backup's migrations differ from the code's ({difference}); --force restores anyway")
    return bool(difference)


def _pre_restore_backup(backup: Backup, actor: AbstractBaseUser | None) -> Backup:
    """A backup of what an in-place restore overwrites; the restore stops unless it succeeded."""
    taken = services.backup_run(backup.policy, trigger=Trigger.PRE_RESTORE, actor=actor)
    if taken.status != Status.SUCCEEDED:
        raise BackupError(f"the pre-restore backup failed, nothing was restored: {taken.error}")
    return taken


def _restore_databases(
    artifacts: list[dict],
    paths: dict[str, Path],
    *,
    target: str | None,
    in_place: bool,
    result: RestoreResult,
    progress: Report,
) -> None:
    databases = [artifact for artifact in artifacts if artifact["kind"] == "database"]
    if target and len(databases) > 1:
        aliases = ", ".join(artifact["alias"] for artifact in databases)
        raise BackupError(f"this backup holds several databases ({aliases}); a target URL takes one")
    for artifact in databases:
        alias = artifact["alias"]
        engine = engine_for(alias) if in_place else engine_of(artifact["engine"])
        if engine.vendor != artifact["engine"]:
            raise BackupError(f"database {alias!r} is {engine.vendor} now, the backup holds {artifact['engine']}")
        size = paths[artifact["name"]].stat().st_size
        engine.restore(paths[artifact["name"]], engine.alias_target(alias) if in_place else target, clean=in_place)
        progress(phase(artifact), size, size)
        result.databases.append(alias)


def _records() -> tuple[list[dict], list[dict]]:
    """Backup rows and the policies' scheduler and lock state, as they are before an in-place restore."""
    scheduling = [field for field in SCHEDULER_FIELDS if field != "updated_at"]
    return list(Backup.objects.values()), list(BackupPolicy.objects.values("pk", *scheduling))


def _carry_over(records: tuple[list[dict], list[dict]]) -> None:
    """Put back the backup records an in-place restore of the portal's database rolled back.

    The restored database is as it was when the dump was taken: the restored backup
    itself reads RUNNING there (the next run would fail it and delete its files as an
    interrupted run's), and every later backup, the pre-restore one included, is
    forgotten (its files never pruned). Their rows as they were just before the restore
    are written back, for policies the restored database still has; so is the policies'
    scheduler and lock state (the dump saw the backup's own run holding the lock).
    """
    backups, policy_states = records
    policies = set(BackupPolicy.objects.values_list("pk", flat=True))
    users = set(get_user_model().objects.values_list("pk", flat=True))
    with transaction.atomic():
        for state in policy_states:
            BackupPolicy.objects.filter(pk=state.pop("pk")).update(**state)
        for row in backups:
            if row["policy_id"] not in policies:
                logger.warning("backup_record_dropped", backup_id=row["id"], location=row["location"])
                continue
            row["created_by_id"] = row["created_by_id"] if row["created_by_id"] in users else None
            Backup.objects.update_or_create(pk=row.pop("id"), defaults=row)
        with connection.cursor() as cursor:  # the id sequence as restored is behind the ids written back
            for sql in connection.ops.sequence_reset_sql(no_style(), [Backup]):
                cursor.execute(sql)


def _restore_files(artifacts: list[dict], paths: dict[str, Path], *, root: Path | None) -> dict | None:
    for artifact in artifacts:
        if artifact["kind"] == "files":
            return file_engine.extract(paths[artifact["name"]], root=root)
    return None


def _audit(
    backup: Backup, result: RestoreResult, target: str | None, actor: AbstractBaseUser | None, *, error: str = ""
) -> None:
    details = {
        "target": "in place" if result.in_place else redact(target or ""),
        "databases": result.databases,
        "files": result.files["count"] if result.files else None,
        "pre_restore_backup": result.pre_restore_backup_id,
        "pre_restore_location": result.pre_restore_location,
        "forced_migrations": result.migrations_differ,
        "error": error,
    }
    if actor is not None and not type(actor).objects.filter(pk=actor.pk).exists():  # not in a restored database
        details["actor"], actor = actor.get_username(), None
    with transaction.atomic():
        record(
            "backup.restore",
            resource=backup,
            details=details,
            actor=actor,
            outcome=Outcome.FAILURE if error else Outcome.SUCCESS,
        )
    logger.info("backup_restored" if not error else "backup_restore_failed", backup_id=backup.pk, **details)


def _key(backup: Backup, artifact: dict) -> str:
    return f"{backup.location}/{artifact['name']}"


def phase(artifact: dict) -> str:
    """The progress phase of restoring an artifact: restore:<alias> for a database, files for the archive."""
    return f"restore:{artifact['alias']}" if artifact["kind"] == "database" else "files"
