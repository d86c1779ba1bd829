"""restore(): checksums before anything is written, migrations checked, in place only after a pre-restore backup."""

import pytest
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from pyrage import x25519

from apps.audit.models import AuditEvent
from apps.backups import services
from apps.backups.engines import engine_for
from apps.backups.errors import BackupError, IntegrityError
from apps.backups.models import Backup, BackupPolicy, Status, Trigger
from apps.backups.restore import restore
from tests.backups.restoring import back_up, flip_a_byte

# A backup runs outside transactions, as in production (see test_services.py).
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def engine():
    return engine_for("default")


@pytest.fixture
def target(engine, tmp_path):
    """An empty alternate database: a scratch PostgreSQL database, or an SQLite file."""
    with engine.scratch("default") as scratch:
        yield scratch


def last_restore_event() -> AuditEvent:
    return AuditEvent.objects.filter(action="backup.restore").latest("pk")


def test_a_restore_into_an_alternate_database_has_the_recorded_rows_and_files(engine, target, tmp_path, settings):
    backup = back_up(tmp_path, settings)
    result = restore(backup, target=target, files_root=tmp_path / "restored")

    (database,) = [a for a in backup.manifest["artifacts"] if a["kind"] == "database"]
    assert engine.count_rows(target) == database["tables"]
    assert engine.applied_migrations(target) == backup.manifest["migrations"]
    media = tmp_path / "restored" / str(settings.MEDIA_ROOT).lstrip("/")
    assert (media / "avatars" / "alice.png").read_bytes() == b"\x89PNG alice"
    assert result.files["count"] == 2
    assert (result.databases, result.in_place, result.pre_restore_backup_id) == (["default"], False, None)
    event = last_restore_event()
    assert (event.outcome, event.details["databases"]) == ("success", ["default"])
    assert not list((tmp_path / "scratch").iterdir())  # the decrypted temporary files are gone


def test_a_restore_reports_its_phases_checksums_first(engine, target, tmp_path, settings):
    backup = back_up(tmp_path, settings)
    phases: list[str] = []
    restore(backup, target=target, progress=lambda phase, done, total: phases.append(phase))
    assert list(dict.fromkeys(phases)) == ["check", "restore:default"]  # files only in place or under a root
    phases.clear()
    with engine.scratch("default") as another:
        restore(backup, target=another, files_root=tmp_path / "files", progress=lambda p, d, t: phases.append(p))
    assert list(dict.fromkeys(phases)) == ["check", "restore:default", "files"]


def test_a_flipped_byte_is_found_before_anything_is_written(engine, target, tmp_path, settings):
    backup = back_up(tmp_path, settings)
    flip_a_byte(tmp_path, backup, "files.tar.zst")  # the last artifact: the database's is checked first
    with pytest.raises(IntegrityError, match=r"files\.tar\.zst: SHA-256 does not match"):
        restore(backup, target=target, files_root=tmp_path / "restored")
    assert engine.count_rows(target) == {}
    assert not (tmp_path / "restored").exists()
    assert last_restore_event().outcome == "failure"


def test_a_backup_with_other_migrations_is_refused_unless_forced(engine, target, tmp_path, settings):
    recorder = MigrationRecorder(connection)
    recorder.record_applied("backups", "9999_from_the_future")
    try:
        backup = back_up(tmp_path, settings)
    finally:
        recorder.record_unapplied("backups", "9999_from_the_future")
    with pytest.raises(BackupError, match=r"only in the backup: backups\.9999_from_the_future.*--force"):
        restore(backup, target=target)
    assert engine.count_rows(target) == {}

    result = restore(backup, target=target, force=True)
    assert result.migrations_differ
    assert ["backups", "9999_from_the_future"] in engine.applied_migrations(target)


def test_an_in_place_restore_takes_a_pre_restore_backup_first(tmp_path, settings):
    backup = back_up(tmp_path, settings)
    BackupPolicy.objects.create(name="made-after-the-backup")
    (settings.MEDIA_ROOT / "report.pdf").write_bytes(b"edited after the backup")
    (settings.MEDIA_ROOT / "avatars" / "alice.png").unlink()

    result = restore(backup, in_place=True)

    assert result.pre_restore_backup_id > backup.pk
    assert (tmp_path / "backups" / result.pre_restore_location / "manifest.json").exists()
    assert not BackupPolicy.objects.filter(name="made-after-the-backup").exists()  # the database is as backed up
    assert (settings.MEDIA_ROOT / "report.pdf").read_bytes() == b"%PDF report"
    assert (settings.MEDIA_ROOT / "avatars" / "alice.png").read_bytes() == b"\x89PNG alice"
    event = last_restore_event()  # written after the restore: in the restored database
    assert event.details["pre_restore_backup"] == result.pre_restore_backup_id
    assert event.details["target"] == "in place"

    # The records as they were before the restore, not as the dump saw them (the restored one RUNNING):
    assert Backup.objects.get(pk=backup.pk).status == Status.SUCCEEDED
    assert Backup.objects.get(pk=result.pre_restore_backup_id).trigger == Trigger.PRE_RESTORE
    after = services.backup_run(backup.policy)  # which must not take the restored backup for an interrupted run
    assert after.status == Status.SUCCEEDED, after.error
    assert after.pk > result.pre_restore_backup_id
    assert (tmp_path / "backups" / backup.location / "manifest.json").exists()


def test_an_encrypted_backup_needs_its_identity(target, tmp_path, settings):
    identity = x25519.Identity.generate()
    backup = back_up(tmp_path, settings, recipients=str(identity.to_public()))
    settings.BACKUP_IDENTITY_FILE = ""
    with pytest.raises(BackupError, match="no age identity configured"):
        restore(backup, target=target)
    assert restore(backup, target=target, identity=str(identity)).databases == ["default"]


def test_a_restore_needs_a_place_and_a_complete_backup(tmp_path, settings):
    backup = back_up(tmp_path, settings)
    with pytest.raises(BackupError, match="say where to restore"):
        restore(backup)
    with pytest.raises(BackupError, match="either in place or into a target"):
        restore(backup, in_place=True, target="postgres://u@h/d")
    failed = Backup.objects.create(
        policy=backup.policy,
        status=Status.FAILED,
        trigger=Trigger.MANUAL,
        storage="local",
        location="nightly/failed",
        started_at=backup.started_at,
    )
    with pytest.raises(BackupError, match="its status is failed"):
        restore(failed, target="postgres://u@h/d")
