"""Restore drills: the newest verified backup restored into scratch targets and checked against its manifest.

A backup is trusted once it has restored. A drill does what a real restore does
(checksums first, verified temporary files, the restore tool with errors fatal)
into throwaway databases and a temporary folder, then compares what came back
with what the manifest recorded: migrations, rows per table, files and their
SHA-256. Its result is stored, alerted on and audited like any backup operation.
"""

import secrets
import shutil
from pathlib import Path

import structlog
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from apps.alerts.services import alert_fire, alert_resolve
from apps.audit.models import Outcome
from apps.audit.services import record
from apps.backups.engines import engine_of
from apps.backups.engines import files as file_engine
from apps.backups.errors import BackupError
from apps.backups.models import Backup, BackupPolicy, Drill, Status, Trigger, Verification
from apps.backups.progress import Listener, Progress
from apps.backups.restore import Report, load_verified, migration_difference, phase, unpacked
from apps.backups.storage import get_storage

logger = structlog.get_logger(__name__)

SOURCE = "backups"


def drill(
    backup: Backup | None = None,
    *,
    policy: BackupPolicy,
    actor: AbstractBaseUser | None = None,
    trigger: str = Trigger.MANUAL,
    progress: Listener | None = None,
    identity: str | None = None,
) -> Drill:
    """Drill `backup` (default: the policy's newest succeeded and verified one); returns the stored Drill.

    A failed check or error makes the drill FAILED (alert "<policy>:drill"); a passing
    drill resolves that alert. Raises BackupError only when there is nothing to drill.
    """
    backup = backup or newest_verified(policy)
    started = timezone.now()
    row = Drill.objects.create(
        backup=backup, policy=policy, status=Status.RUNNING, trigger=trigger, started_at=started, created_by=actor
    )
    checks: list[dict] = []
    report = Progress("drill", policy=policy.name, backup_id=backup.pk, listener=progress)
    try:
        _run(backup, checks, progress=report, identity=identity)
        error = "; ".join(f"{check['name']}: {check['detail']}" for check in checks if not check["ok"])
    except Exception as exc:  # a drill always ends recorded, whatever went wrong
        if not isinstance(exc, BackupError):
            logger.exception("backup_drill_error", policy=policy.name, backup_id=backup.pk)
        error = str(exc) or type(exc).__name__
        checks.append({"name": "restore", "ok": False, "detail": error})
    _finish(row, checks, error, actor)
    report.finish(row.status, error)
    return row


def newest_verified(policy: BackupPolicy) -> Backup:
    backup = (
        policy.backups.filter(status=Status.SUCCEEDED, verification=Verification.OK, pruned_at__isnull=True)
        .order_by("-started_at")
        .first()
    )
    if backup is None:
        raise BackupError(f"policy {policy} has no verified backup to drill")
    return backup


def _run(backup: Backup, checks: list[dict], *, progress: Report, identity: str | None) -> None:
    storage = get_storage(backup.storage)
    data = load_verified(backup, storage, progress)
    checks.append({"name": "checksums", "ok": True, "detail": f"{len(data['artifacts'])} artifacts match"})
    with unpacked(backup, storage, data["artifacts"], identity=identity, progress=progress) as paths:
        for artifact in data["artifacts"]:
            if artifact["kind"] == "database":
                _drill_database(artifact, paths[artifact["name"]], data["migrations"], checks, progress)
            else:
                _drill_files(artifact, paths[artifact["name"]], checks)


def _drill_database(artifact: dict, path: Path, migrations: list, checks: list[dict], progress: Report) -> None:
    alias, engine = artifact["alias"], engine_of(artifact["engine"])
    with engine.scratch(alias) as target:
        engine.restore(path, target, clean=False)
        progress(phase(artifact), path.stat().st_size, path.stat().st_size)
        checks.append({"name": f"restore:{alias}", "ok": True, "detail": f"{engine.vendor} restore exited cleanly"})
        progress("check", 0, None)
        if alias == "default":  # the manifest records the portal database's migrations
            difference = migration_difference(engine.applied_migrations(target), migrations)
            checks.append({"name": "migrations", "ok": not difference, "detail": difference or "as recorded"})
        checks.append(_compare_rows(alias, engine.count_rows(target), artifact.get("tables", {})))


def _compare_rows(alias: str, counted: dict[str, int], recorded: dict[str, int]) -> dict:
    wrong = sorted(table for table in counted.keys() | recorded.keys() if counted.get(table) != recorded.get(table))
    detail = ", ".join(f"{table}: {counted.get(table)} rows, recorded {recorded.get(table)}" for table in wrong[:10])
    return {"name": f"rows:{alias}", "ok": not wrong, "detail": detail or f"{len(recorded)} tables as recorded"}


def _drill_files(artifact: dict, path: Path, checks: list[dict]) -> None:
    root = Path(settings.BACKUP_SCRATCH_DIR) / f"drill-files-{secrets.token_hex(4)}"
    try:
        restored = file_engine.extract(path, root=root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    recorded = artifact.get("files", {})
    problems = [
        f"{what} {restored[what]}, recorded {recorded.get(what)}"
        for what in ("count", "bytes")
        if restored[what] != recorded.get(what)
    ]
    wrong = [
        entry["path"]
        for entry, expected in zip(restored["entries"], recorded.get("entries", []), strict=False)
        if entry != expected
    ]
    if len(restored["entries"]) != len(recorded.get("entries", [])):
        problems.append("a different list of files")
    if wrong:
        problems.append(f"{len(wrong)} files differ (first: {wrong[0]})")
    detail = "; ".join(problems) or f"{restored['count']} files, SHA-256 as recorded"
    checks.append({"name": "files", "ok": not problems, "detail": detail})


def _finish(row: Drill, checks: list[dict], error: str, actor: AbstractBaseUser | None) -> None:
    """Store the result, alert or resolve, and audit: one transaction."""
    row.finished_at = timezone.now()
    row.duration = row.finished_at - row.started_at
    row.status, row.checks, row.error = (Status.FAILED if error else Status.SUCCEEDED), checks, error
    policy = row.policy
    with transaction.atomic():
        row.save(update_fields=["finished_at", "duration", "status", "checks", "error"])
        if error:
            alert_fire(
                source=SOURCE,
                key=f"{policy}:drill",
                severity="error",
                summary=f"Restore drill of {policy} failed",
                description=error,
            )
        else:
            alert_resolve(source=SOURCE, key=f"{policy}:drill")
        details = {"backup": row.backup_id, "status": row.status, "checks": checks, "error": error}
        record(
            "backup.drill",
            resource=row,
            details=details,
            actor=actor,
            outcome=Outcome.FAILURE if error else Outcome.SUCCESS,
        )
    log = logger.error if error else logger.info
    log("backup_drill_finished", policy=policy.name, backup_id=row.backup_id, status=row.status, error=error)
