"""Backup services: run a policy's backup, verify stored backups, delete one.

backup_run() holds the policy's lease for the whole run, writes the record before any byte (a
crash leaves a RUNNING record that the next run marks failed, and its files removed), streams
every artifact through the pipeline, then the manifest, all under a staging prefix
("<policy>/.staging/<stamp>-<id>"), publishes the whole backup to its final prefix (the record's
location: a killed run never leaves a file under it without the manifest), then verifies and
applies retention.
Disk and network I/O never happen inside a transaction; each state change is one transaction
with its audit row.
"""

import math
import platform
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import django
import structlog
import zstandard
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connections, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from apps.alerts.services import alert_fire, alert_resolve
from apps.audit.models import Outcome
from apps.audit.services import record
from apps.backups import manifest, pipeline, retention
from apps.backups.engines import engine_for
from apps.backups.engines import files as file_engine
from apps.backups.errors import BackupBusyError, BackupError
from apps.backups.lease import Lease
from apps.backups.models import Backup, BackupPolicy, Status, Trigger, Verification
from apps.backups.progress import Listener, Progress
from apps.backups.storage import Storage, get_storage

logger = structlog.get_logger(__name__)
SOURCE = "backups"  # the alerts' source; keys: "<policy>", "<policy>:verify"
STAGING = ".staging"  # a policy's folder of runs being written (policy names are slugs: no dots)
INTERRUPTED = "interrupted: the run stopped before it finished (process killed, or its lock expired)"


@dataclass
class VerifyResult:
    ok: bool
    checked: list[str] = field(default_factory=list)  # storage keys re-read
    errors: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- backup


def backup_run(
    policy: BackupPolicy,
    *,
    trigger: str = Trigger.MANUAL,
    actor: AbstractBaseUser | None = None,
    progress: Listener | None = None,
) -> Backup:
    """Back up what the policy names; returns the Backup, SUCCEEDED or FAILED (its error says why).

    Raises BackupBusyError (and does nothing) while another run of the policy holds the lease.
    A failure fires the alert (backups, <policy>), removes the run's files and leaves older
    backups alone; a success resolves the alert. Retention runs only after the new backup
    verified (or succeeded, when the policy does not verify after writing).
    Must be called outside a transaction: the record is committed before any byte is written, and
    SQLite's backup API cannot copy a database while this connection holds a write transaction.
    """
    if transaction.get_connection().in_atomic_block:
        raise BackupError("a backup cannot run inside a database transaction (call it in autocommit mode)")
    lease = Lease.acquire(policy)
    try:
        _clean_up_interrupted(policy)
        backup = _start(policy, trigger, actor)
        report = Progress("backup", policy=policy.name, backup_id=backup.pk, lease=lease, listener=progress)
        try:
            storage = get_storage(backup.storage)
            _write(backup, storage, report)
        except BaseException as exc:  # interrupted too (Ctrl-C, SIGTERM): the record says failed, not running
            _fail(backup, exc, actor)
            report.finish(Status.FAILED, backup.error)
            if not isinstance(exc, Exception):
                raise
            return backup
        _succeed(backup, actor)
        if policy.verify_after:
            report("verify", 0, backup.size_bytes)
            verify(backup, actor=actor)
        if backup.verification == Verification.OK or not policy.verify_after:
            report("prune", 0)
            _prune(policy)
        report.finish(backup.status, backup.verify_error)  # a backup that failed its verify says why
        return backup
    finally:
        lease.release()


def fail_interrupted(policy: BackupPolicy) -> int:
    """Fail the runs of the policy that a killed process left RUNNING, now rather than at its next run.

    Does nothing while a run holds the policy's lease (it is alive, or its lock has not expired yet);
    returns how many records it failed. The scheduler's tick calls it for every policy, so a
    killed backup is alerted on within a lease period, not a schedule period.
    """
    if not Backup.objects.filter(policy=policy, status=Status.RUNNING).exists():
        return 0
    try:
        lease = Lease.acquire(policy)
    except BackupBusyError:
        return 0
    try:
        return _clean_up_interrupted(policy)
    finally:
        lease.release()


def staging_prefix(location: str) -> str:
    """Where a run writes the backup that it publishes at location: "<policy>/.staging/<stamp>-<id>"."""
    policy, _, name = location.rpartition("/")
    return f"{policy}/{STAGING}/{name}"


def _clean_up_interrupted(policy: BackupPolicy) -> int:
    """Fail the policy's RUNNING records and drop their files: under the lease no other run of the policy lives.

    The whole staging folder goes, so does what a failed run could not remove (its storage was unreachable).
    """
    try:
        storage = get_storage(policy.storage)
        storage.cleanup_partial(f"{policy.name}/")
        storage.delete_prefix(f"{policy.name}/{STAGING}/")
    except BackupError:
        logger.warning("backup_cleanup_failed", policy=policy.name, exc_info=True)
    interrupted = list(Backup.objects.filter(policy=policy, status=Status.RUNNING))
    for backup in interrupted:
        logger.warning("backup_interrupted", policy=policy.name, backup_id=backup.pk, location=backup.location)
        _fail(backup, BackupError(INTERRUPTED), actor=None)
    return len(interrupted)


def _start(policy: BackupPolicy, trigger: str, actor: AbstractBaseUser | None) -> Backup:
    """The RUNNING record, committed before any byte is written (autocommit: nothing else is in flight)."""
    now = timezone.now()
    return Backup.objects.create(
        policy=policy,
        status=Status.RUNNING,
        trigger=trigger,
        created_by=actor,
        storage=policy.storage,
        location=f"{policy.name}/{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}",
        started_at=now,
        encrypted=policy.encrypted,
    )


def _write(backup: Backup, storage: Storage, report: Progress) -> None:
    """Every artifact, then the manifest (both copies), staged, then published; fills the record, saves nothing."""
    policy = backup.policy
    recipients = policy.recipient_list()
    artifacts, tools = [], {}
    for alias in policy.databases:
        engine = engine_for(alias)
        tools.update(engine.tool_versions())
        artifacts.append(_dump(backup, storage, engine, alias, recipients, report))
    paths = _file_paths(policy)
    if paths:
        artifacts.append(_archive(backup, storage, paths, recipients, report))
    report("manifest", 0)
    finished = timezone.now()
    backup.finished_at, backup.duration = finished, finished - backup.started_at
    backup.size_bytes = sum(artifact["size"] for artifact in artifacts)
    backup.manifest = _manifest(backup, artifacts, tools)
    staging = staging_prefix(backup.location)
    backup.manifest_sha256 = manifest.write(storage, staging, backup.manifest)
    storage.publish(f"{staging}/", f"{backup.location}/", last=manifest.NAMES)


def _dump(backup: Backup, storage: Storage, engine: Any, alias: str, recipients: list[str], report: Progress) -> dict:
    kind = "pgdump" if engine.vendor == "postgresql" else engine.vendor + "3"
    name = f"db-{alias}.{kind}.zst" + (pipeline.AGE_SUFFIX if recipients else "")
    phase = f"dump:{alias}"
    report(phase, 0)
    with engine.dump(alias) as stream:
        info = _pack(backup, storage, stream, name, recipients, lambda done: report(phase, done))
        # Inside the dump: the engine counts rows in the dump's own snapshot (or copy).
        tables = engine.row_counts(alias)
    return {**_artifact(info), "kind": "database", "alias": alias, "engine": engine.vendor, "tables": tables}


def _archive(backup: Backup, storage: Storage, paths: list[Path], recipients: list[str], report: Progress) -> dict:
    name = "files.tar.zst" + (pipeline.AGE_SUFFIX if recipients else "")
    report("files", 0)
    with file_engine.archive(paths) as stream:
        info = _pack(backup, storage, stream, name, recipients, lambda done: report("files", done))
    return {**_artifact(info), "kind": "files", "engine": "files", "files": stream.summary}


def _pack(
    backup: Backup, storage: Storage, stream: Any, name: str, recipients: list[str], progress: Callable[[int], None]
) -> pipeline.ArtifactInfo:
    level = backup.policy.compression_level
    key = f"{staging_prefix(backup.location)}/{name}"
    return pipeline.pack(stream, storage, key, level=level, recipients=recipients, progress=progress)


def _artifact(info: pipeline.ArtifactInfo) -> dict:
    return {"name": info.name, "size": info.size, "sha256": info.sha256, "raw_size": info.raw_size}


def _file_paths(policy: BackupPolicy) -> list[Path]:
    """MEDIA_ROOT (when the policy includes it and it exists: a fresh install has none yet) and the policy's paths."""
    paths = [Path(path) for path in policy.paths]
    media = Path(settings.MEDIA_ROOT)
    if policy.include_media and media.exists():
        paths.insert(0, media)
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise BackupError(f"paths to back up do not exist: {', '.join(missing)}")
    return paths


def _manifest(backup: Backup, artifacts: list[dict], tools: dict[str, str]) -> dict[str, Any]:
    policy = backup.policy
    return {
        "format": manifest.FORMAT,
        "backup_id": backup.pk,
        "policy": policy.name,
        "location": backup.location,
        "started_at": backup.started_at.isoformat(),
        "finished_at": backup.finished_at.isoformat(),
        "duration_seconds": backup.duration.total_seconds(),
        "encrypted": bool(policy.recipient_list()),
        "recipients": policy.recipient_list(),
        "compression": {"algorithm": "zstd", "level": policy.compression_level},
        "tools": {
            **tools,
            "python": platform.python_version(),
            "zstandard": zstandard.__version__,
            "pyrage": version("pyrage"),
            "django": django.get_version(),
        },
        "migrations": applied_migrations(),
        "artifacts": artifacts,
    }


def applied_migrations() -> list[list[str]]:
    """The migrations applied to the 'default' database, sorted: a restore compares them with the code's."""
    recorder = MigrationRecorder(connections["default"])
    return sorted([app, name] for app, name in recorder.applied_migrations())


def _succeed(backup: Backup, actor: AbstractBaseUser | None) -> None:
    backup.status = Status.SUCCEEDED
    with transaction.atomic():
        backup.save(update_fields=["status", "finished_at", "duration", "size_bytes", "manifest", "manifest_sha256"])
        record("backup.run", resource=backup, details=_run_details(backup), actor=actor)
        alert_resolve(source=SOURCE, key=backup.policy.name)
    logger.info("backup_succeeded", policy=backup.policy.name, backup_id=backup.pk, size=backup.size_bytes)


def _fail(backup: Backup, exc: BaseException, actor: AbstractBaseUser | None) -> None:
    """Record why, remove the run's files (a partial backup is no backup), alert."""
    if not isinstance(exc, BackupError):
        logger.exception("backup_crashed", policy=backup.policy.name, backup_id=backup.pk)
    _remove_files(backup)
    now = timezone.now()
    backup.status, backup.error = Status.FAILED, str(exc) or type(exc).__name__
    backup.finished_at, backup.duration = now, now - backup.started_at
    policy = backup.policy
    with transaction.atomic():
        backup.save(update_fields=["status", "error", "finished_at", "duration"])
        details = _run_details(backup)
        record("backup.run", resource=backup, details=details, outcome=Outcome.FAILURE, actor=actor)
        alert_fire(
            source=SOURCE,
            key=policy.name,
            severity="error",
            summary=f"Backup of {policy} failed",
            description=backup.error,
            labels={"policy": policy.name},
        )
    logger.error("backup_failed", policy=policy.name, backup_id=backup.pk, error=backup.error)


def _run_details(backup: Backup) -> dict[str, Any]:
    return {
        "policy": backup.policy.name,
        "trigger": backup.trigger,
        "location": backup.location,
        "storage": backup.storage,
        "size_bytes": backup.size_bytes,
        "encrypted": backup.encrypted,
        "error": backup.error,
    }


def _remove_files(backup: Backup) -> None:
    """Best effort: what stays behind (storage unreachable) is removed by the next run's clean-up."""
    try:
        storage = get_storage(backup.storage)
        for prefix in (staging_prefix(backup.location), backup.location):
            storage.delete_prefix(f"{prefix}/")  # partial objects too
    except BackupError:
        logger.warning("backup_files_not_removed", backup_id=backup.pk, location=backup.location, exc_info=True)


def _prune(policy: BackupPolicy) -> None:
    """Retention after a good backup; its failure leaves the new backup good, so it is logged, not raised."""
    try:
        retention.prune(policy, dry_run=False, actor=None)
    except Exception:
        logger.exception("backup_prune_failed", policy=policy.name)


# ---------------------------------------------------------------- verify


def verify(backup: Backup, *, sample_percent: int | None = None, actor: AbstractBaseUser | None = None) -> VerifyResult:
    """Re-read the backup's manifest (both copies) and artifacts, and record the verdict.

    sample_percent: read only that share of the artifacts, chosen at random (at least one).
    A failure fires the alert (backups, <policy>:verify); a success resolves it.
    """
    names = [artifact["name"] for artifact in backup.manifest.get("artifacts", [])]
    if sample_percent is not None:
        names = random.sample(names, _sample_size(len(names), sample_percent))
    result = _verify(backup, names, actor)
    _alert_verify(backup.policy, result)
    return result


def verify_policy_sample(policy: BackupPolicy, *, percent: int) -> VerifyResult:
    """Re-read percent of the artifacts of the policy's stored backups, continuing where the last sample stopped.

    The artifacts of all succeeded, unpruned backups are taken in one stable order
    (backup id, artifact name); each call reads the next ceil(n * percent / 100) after the
    cursor, wrapping around, so 100 / percent calls read every artifact.
    """
    backups = {
        backup.pk: backup
        for backup in Backup.objects.filter(policy=policy, status=Status.SUCCEEDED, pruned_at__isnull=True)
    }
    ring = sorted((pk, artifact["name"]) for pk, b in backups.items() for artifact in b.manifest.get("artifacts", []))
    chosen = _after_cursor(ring, policy.verify_cursor, _sample_size(len(ring), percent))
    result = VerifyResult(ok=True)
    for pk in sorted({pk for pk, _ in chosen}):
        part = _verify(backups[pk], [name for backup_id, name in chosen if backup_id == pk], None)
        result.ok &= part.ok
        result.checked += part.checked
        result.errors += part.errors
    if chosen:
        last_id, last_name = chosen[-1]
        policy.verify_cursor = f"{last_id}/{last_name}"
        policy.save(update_fields=["verify_cursor"])
    _alert_verify(policy, result)
    return result


def _sample_size(count: int, percent: int) -> int:
    if not 1 <= percent <= 100:
        raise BackupError(f"sample percentage must be 1 to 100, not {percent}")
    return min(count, max(1, math.ceil(count * percent / 100)))


def _after_cursor(ring: list[tuple[int, str]], cursor: str, count: int) -> list[tuple[int, str]]:
    """count entries of the sorted ring that follow cursor ("<backup id>/<name>"), wrapping around."""
    backup_id, _, name = cursor.partition("/")
    position = (int(backup_id), name) if backup_id.isdigit() else (-1, "")
    start = next((index for index, entry in enumerate(ring) if entry > position), 0)
    return [ring[(start + offset) % len(ring)] for offset in range(count)] if ring else []


def _verify(backup: Backup, names: list[str], actor: AbstractBaseUser | None) -> VerifyResult:
    """Check the manifest and the named artifacts; store the verdict with its audit row."""
    if backup.status != Status.SUCCEEDED or backup.pruned_at is not None:
        state = "pruned" if backup.pruned_at else backup.status
        raise BackupError(f"backup {backup.pk} has no stored files to verify ({state})")
    result = VerifyResult(ok=True)
    try:
        storage = get_storage(backup.storage)
        stored = manifest.load(storage, backup.location, sha256=backup.manifest_sha256)
        artifacts = {artifact["name"]: artifact for artifact in stored["artifacts"]}
        for name in names:
            key = f"{backup.location}/{name}"
            result.checked.append(key)
            _check(storage, key, artifacts.get(name), result)
    except BackupError as exc:
        result.errors.append(str(exc))
    result.ok = not result.errors
    _record_verdict(backup, result, complete=set(names) >= set(_names(backup)), actor=actor)
    return result


def _names(backup: Backup) -> list[str]:
    return [artifact["name"] for artifact in backup.manifest.get("artifacts", [])]


def _check(storage: Storage, key: str, artifact: dict | None, result: VerifyResult) -> None:
    if artifact is None:
        result.errors.append(f"{key}: not in the stored manifest")
        return
    try:
        pipeline.check(storage, key, artifact["sha256"], artifact["size"])
    except BackupError as exc:
        result.errors.append(str(exc))


def _record_verdict(backup: Backup, result: VerifyResult, *, complete: bool, actor: AbstractBaseUser | None) -> None:
    """A failure marks the backup FAILED; only a check of every artifact marks it OK (a sample vouches for no more)."""
    if not result.ok:
        backup.verification, backup.verify_error = Verification.FAILED, "\n".join(result.errors)
    elif complete:
        backup.verification, backup.verify_error = Verification.OK, ""
    if not result.ok or complete or backup.verification == Verification.OK:
        backup.verified_at = timezone.now()
    outcome = Outcome.SUCCESS if result.ok else Outcome.FAILURE
    with transaction.atomic():
        backup.save(update_fields=["verification", "verify_error", "verified_at"])
        details = {"checked": result.checked, "errors": result.errors, "complete": complete}
        record("backup.verify", resource=backup, details=details, outcome=outcome, actor=actor)
    logger.info("backup_verified", backup_id=backup.pk, ok=result.ok, checked=len(result.checked))


def _alert_verify(policy: BackupPolicy, result: VerifyResult) -> None:
    key = f"{policy.name}:verify"
    if result.ok:
        alert_resolve(source=SOURCE, key=key)
        return
    alert_fire(
        source=SOURCE,
        key=key,
        severity="error",
        summary=f"Verify of backups of {policy} failed",
        description="\n".join(result.errors),
        labels={"policy": policy.name},
    )


# ---------------------------------------------------------------- delete


def delete(backup: Backup, *, actor: AbstractBaseUser | None) -> None:
    """Delete the backup's stored files; the record stays (pruned_at set) as history."""
    if backup.status == Status.RUNNING:
        raise BackupError(f"backup {backup.pk} is still running")
    removed = get_storage(backup.storage).delete_prefix(f"{backup.location}/")
    backup.pruned_at = timezone.now()
    with transaction.atomic():
        backup.save(update_fields=["pruned_at"])
        record("backup.delete", resource=backup, details={"location": backup.location, "objects": removed}, actor=actor)
    logger.info("backup_deleted", backup_id=backup.pk, location=backup.location, objects=removed)
