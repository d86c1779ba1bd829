"""backup_run, verify, verify_policy_sample and delete, end to end: real databases, real files, real storages."""

import sqlite3
import subprocess
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone
from pyrage import x25519

from apps.alerts.models import Alert
from apps.audit.models import AuditEvent
from apps.backups import manifest, pipeline, services
from apps.backups.errors import BackupBusyError, BackupError
from apps.backups.lease import Lease
from apps.backups.models import Backup, BackupPolicy, Status, Verification
from apps.backups.storage import LocalStorage
from tests.backups.conftest import S3_CREDENTIALS

# A backup runs outside transactions (autocommit), as in production: SQLite's backup API cannot copy a
# database whose connection holds an open write transaction, and progress frames leave at once.
pytestmark = pytest.mark.django_db(transaction=True)
DUMP = "db-default.pgdump.zst" if connection.vendor == "postgresql" else "db-default.sqlite3.zst"


@pytest.fixture
def store(tmp_path: Path, settings) -> LocalStorage:
    settings.BACKUP_SCRATCH_DIR = tmp_path / "scratch"
    settings.BACKUP_STORAGES = {"local": {"kind": "local", "path": tmp_path / "backups"}}
    return LocalStorage(tmp_path / "backups")


@pytest.fixture
def media(tmp_path: Path, settings) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    (settings.MEDIA_ROOT / "avatars").mkdir(parents=True)
    (settings.MEDIA_ROOT / "avatars" / "alice.png").write_bytes(b"\x89PNG alice")
    (settings.MEDIA_ROOT / "report.pdf").write_bytes(b"%PDF report")
    return settings.MEDIA_ROOT


@pytest.fixture
def policy(store, media) -> BackupPolicy:
    return BackupPolicy.objects.create(name="nightly", keep_last=10, keep_daily=0, keep_weekly=0, keep_monthly=0)


def _alert(key: str) -> Alert | None:
    return Alert.objects.filter(source="backups", key=key).first()


def _unpack(storage, backup: Backup, name: str, dest: Path, identity: str | None = None) -> Path:
    artifact = next(a for a in backup.manifest["artifacts"] if a["name"] == name)
    key = f"{backup.location}/{name}"
    return pipeline.unpack_verified(storage, key, artifact["sha256"], artifact["size"], dest, identity=identity)


def test_a_backup_of_sqlite_and_media_is_stored_with_its_manifest_verified_and_audited(
    policy, store, tmp_path, superuser
):
    phases = []
    backup = services.backup_run(policy, actor=superuser, progress=lambda phase, *_: phases.append(phase))

    assert (backup.status, backup.error, backup.verification) == (Status.SUCCEEDED, "", Verification.OK)
    assert list(dict.fromkeys(phases)) == ["dump:default", "files", "manifest", "verify", "prune"]
    names = [DUMP, "files.tar.zst"]
    assert [a["name"] for a in backup.manifest["artifacts"]] == names
    assert store.list(f"{backup.location}/") == sorted(
        [f"{backup.location}/{n}" for n in [*names, "manifest.copy.json", "manifest.json"]]
    )
    stored = manifest.load(store, backup.location, sha256=backup.manifest_sha256)
    assert stored == Backup.objects.get(pk=backup.pk).manifest
    assert stored["backup_id"] == backup.pk and stored["encrypted"] is False
    assert ["backups", "0002_default_policy"] in stored["migrations"]
    assert {"python", "zstandard", "pyrage", "django"} <= set(stored["tools"])
    database, files = stored["artifacts"]
    assert database["tables"]["backups_backuppolicy"] == BackupPolicy.objects.count()
    assert files["files"]["count"] == 2
    assert backup.size_bytes == database["size"] + files["size"]

    if connection.vendor == "sqlite":
        copy = _unpack(store, backup, DUMP, tmp_path / "restored.sqlite3")
        with sqlite3.connect(copy) as restored:
            policies = restored.execute("select name from backups_backuppolicy order by name").fetchall()
        assert policies == [("default",), ("nightly",)]
    events = AuditEvent.objects.filter(action__startswith="backup.").order_by("id")
    assert list(events.values_list("action", "actor_username")) == [
        ("backup.run", "alice"),
        ("backup.verify", "alice"),
        ("backup.prune", "system"),
    ]


@pytest.mark.postgres
def test_a_backup_of_postgresql_is_a_pg_restore_archive(policy, store, tmp_path):
    policy.include_media = False
    policy.save()
    backup = services.backup_run(policy)

    assert (backup.status, backup.verification) == (Status.SUCCEEDED, Verification.OK), backup.error
    (database,) = backup.manifest["artifacts"]
    assert (database["name"], database["engine"]) == ("db-default.pgdump.zst", "postgresql")
    assert database["tables"]["backups_backuppolicy"] == BackupPolicy.objects.count()
    assert "pg_dump" in backup.manifest["tools"]
    dump = _unpack(store, backup, database["name"], tmp_path / "default.pgdump")
    listing = subprocess.run(
        [django_settings.BACKUP_PG_RESTORE, "--list", dump], capture_output=True, text=True, check=True
    )
    assert "TABLE DATA public backups_backuppolicy" in listing.stdout


def test_an_encrypted_backup_on_s3_restores_with_the_identity_only(policy, settings, s3_server, s3_bucket, tmp_path):
    identity = x25519.Identity.generate()
    settings.BACKUP_STORAGES = {
        "s3": {"kind": "s3", "bucket": s3_bucket, "prefix": "portal", "endpoint_url": s3_server, **S3_CREDENTIALS}
    }
    policy.storage, policy.recipients = "s3", f"{identity.to_public()}\n"
    policy.save()
    backup = services.backup_run(policy)

    assert (backup.status, backup.verification, backup.encrypted) == (Status.SUCCEEDED, Verification.OK, True)
    assert [a["name"] for a in backup.manifest["artifacts"]] == [f"{DUMP}.age", "files.tar.zst.age"]
    assert backup.manifest["recipients"] == [str(identity.to_public())]
    storage = services.get_storage("s3")
    with pytest.raises(BackupError, match="wrong key"):
        _unpack(storage, backup, "files.tar.zst.age", tmp_path / "files.tar", str(x25519.Identity.generate()))
    tar = _unpack(storage, backup, "files.tar.zst.age", tmp_path / "files.tar", str(identity))
    assert tar.read_bytes()[257:262] == b"ustar"


def test_a_second_run_while_one_holds_the_lock_is_refused(policy):
    lease = Lease.acquire(policy)
    with pytest.raises(BackupBusyError, match="already running"):
        services.backup_run(policy)
    assert not Backup.objects.exists()
    lease.release()
    assert services.backup_run(policy).status == Status.SUCCEEDED


def test_an_expired_lock_is_taken_over_and_the_killed_run_is_marked_failed_and_cleaned(policy, store):
    Lease.acquire(policy)  # a run killed with its lock held ...
    dead = Backup.objects.create(policy=policy, storage="local", location="nightly/dead", started_at=timezone.now())
    with store.writer(f"nightly/dead/{DUMP}") as target:
        target.write(b"a complete artifact, but no manifest")
    (store.root / "nightly" / "dead" / ".files.tar.zst.part-0badf00d").write_bytes(b"half")  # ... mid-write

    later = timezone.now() + timedelta(seconds=django_settings.BACKUP_LOCK_SECONDS + 1)
    with time_machine.travel(later, tick=True):
        backup = services.backup_run(policy)

    assert backup.status == Status.SUCCEEDED
    dead.refresh_from_db()
    assert dead.status == Status.FAILED and dead.error.startswith("interrupted")
    assert not (store.root / "nightly" / "dead").exists()
    policy.refresh_from_db()
    assert (policy.lock_token, policy.lock_expires_at) == ("", None)


def test_a_run_writes_under_staging_so_its_final_folder_never_holds_an_artifact_without_its_manifest(policy, store):
    seen = {}

    def fail_after_the_dump(phase: str, *_: object) -> None:
        if phase == "files":  # the dump is complete: a kill here used to leave it under its final name
            location = Backup.objects.get(status=Status.RUNNING).location
            seen["final"] = store.list(f"{location}/")
            seen["staged"] = store.list(f"{services.staging_prefix(location)}/")
            raise BackupError("the disk went away")

    backup = services.backup_run(policy, progress=fail_after_the_dump)

    assert (backup.status, backup.error) == (Status.FAILED, "the disk went away")
    assert seen == {"final": [], "staged": [f"nightly/.staging/{backup.location.split('/')[1]}/{DUMP}"]}
    assert list(store.root.rglob("*")) == []  # no file, no empty folder (.staging included)


def test_the_next_run_removes_what_killed_runs_left_in_staging(policy, store):
    killed = Backup.objects.create(policy=policy, storage="local", location="nightly/killed", started_at=timezone.now())
    with store.writer(f"nightly/.staging/killed/{DUMP}") as target:
        target.write(b"a complete artifact, not published")
    (store.root / "nightly" / ".staging" / "killed" / ".files.tar.zst.part-0badf00d").write_bytes(b"half")
    with store.writer("nightly/.staging/older/files.tar.zst") as target:  # a failed run that could not clean up
        target.write(b"left when the storage was unreachable")

    backup = services.backup_run(policy)

    assert backup.status == Status.SUCCEEDED
    killed.refresh_from_db()
    assert killed.status == Status.FAILED and killed.error.startswith("interrupted")
    assert store.list() == store.list(f"{backup.location}/")  # the new backup's files, nothing else
    assert not (store.root / "nightly" / ".staging").exists()


def test_a_failed_backup_is_recorded_cleaned_and_alerted_and_the_next_success_resolves(policy, store, tmp_path):
    first = services.backup_run(policy)
    before = {key: store.open(key).read() for key in store.list()}
    policy.paths = [str(tmp_path / "gone")]
    policy.save()

    failed = services.backup_run(policy)

    assert failed.status == Status.FAILED and "do not exist" in failed.error
    assert store.list(f"{failed.location}/") == []  # its database artifact was removed
    assert {key: store.open(key).read() for key in store.list()} == before  # older backups untouched
    assert _alert("nightly").is_open and _alert("nightly").description == failed.error
    event = AuditEvent.objects.filter(action="backup.run").latest("id")
    assert (event.outcome, event.details["error"]) == ("failure", failed.error)

    policy.paths = []
    policy.save()
    assert services.backup_run(policy).status == Status.SUCCEEDED
    assert not _alert("nightly").is_open
    assert Backup.objects.get(pk=first.pk).pruned_at is None


@pytest.mark.django_db(transaction=False)
def test_a_backup_inside_a_transaction_is_refused_at_once(policy):
    with pytest.raises(BackupError, match="inside a database transaction"):
        services.backup_run(policy)
    assert not Backup.objects.exists()


def test_an_unknown_database_fails_the_backup_with_a_clear_error(policy):
    policy.databases = ["default", "nope"]
    policy.save()
    backup = services.backup_run(policy)
    assert (backup.status, backup.error) == (Status.FAILED, "unknown database 'nope': not in settings.DATABASES")


@pytest.mark.postgres
def test_a_run_started_while_another_is_writing_is_refused(policy):
    """Two real runs at once (PostgreSQL: one connection per thread): the second is refused, the first completes."""
    writing, refused = threading.Event(), threading.Event()
    outcome = {}

    def first_run() -> None:
        def progress(phase: str, *_: object) -> None:
            if phase.startswith("dump:") and not writing.is_set():
                writing.set()
                refused.wait(timeout=30)

        try:
            outcome["first"] = services.backup_run(BackupPolicy.objects.get(pk=policy.pk), progress=progress)
        finally:
            connection.close()

    thread = threading.Thread(target=first_run)
    thread.start()
    assert writing.wait(timeout=30)
    with pytest.raises(BackupBusyError):
        services.backup_run(BackupPolicy.objects.get(pk=policy.pk))
    refused.set()
    thread.join(timeout=60)
    assert outcome["first"].status == Status.SUCCEEDED
    assert Backup.objects.count() == 1


def test_a_storage_that_cannot_be_written_fails_the_backup_with_a_clear_error(policy, settings, tmp_path):
    (tmp_path / "a-file").write_bytes(b"")
    settings.BACKUP_STORAGES = {"local": {"kind": "local", "path": tmp_path / "a-file"}}
    backup = services.backup_run(policy)
    assert backup.status == Status.FAILED and backup.error.startswith("cannot create")


def test_verify_detects_a_flipped_byte_and_alerts_until_a_verify_passes(policy, store):
    backup = services.backup_run(policy)
    path = store.root.joinpath(*backup.location.split("/"), "files.tar.zst")
    good = path.read_bytes()
    path.write_bytes(good[:10] + bytes([good[10] ^ 0x40]) + good[11:])

    result = services.verify(backup)

    assert not result.ok and "SHA-256 does not match" in result.errors[0]
    backup.refresh_from_db()
    assert backup.verification == Verification.FAILED and "files.tar.zst" in backup.verify_error
    assert _alert("nightly:verify").is_open
    path.write_bytes(good)
    assert services.verify(backup).ok
    backup.refresh_from_db()
    assert (backup.verification, backup.verify_error) == (Verification.OK, "")
    assert not _alert("nightly:verify").is_open


def test_verify_detects_an_edited_manifest(policy, store):
    backup = services.backup_run(policy)
    edited = {**backup.manifest, "artifacts": backup.manifest["artifacts"][:1]}
    manifest.write(store, backup.location, edited)
    result = services.verify(backup)
    assert not result.ok and "not the one recorded" in result.errors[0]


def test_a_verify_sample_reads_part_and_cannot_vouch_for_the_rest(policy):
    policy.verify_after = False
    policy.save()
    backup = services.backup_run(policy)
    result = services.verify(backup, sample_percent=10)
    assert result.ok and len(result.checked) == 1
    backup.refresh_from_db()
    assert (backup.verification, backup.verified_at) == (Verification.UNVERIFIED, None)
    with pytest.raises(BackupError, match="1 to 100"):
        services.verify(backup, sample_percent=0)


def test_the_rotating_sample_reads_every_artifact_in_100_over_percent_runs(policy):
    policy.verify_after = False
    policy.save()
    backups = [services.backup_run(policy) for _ in range(3)]
    every = {f"{b.location}/{a['name']}" for b in backups for a in b.manifest["artifacts"]}

    runs = [services.verify_policy_sample(policy, percent=25) for _ in range(100 // 25)]

    assert all(result.ok and len(result.checked) == 2 for result in runs)  # ceil(6 x 25 %)
    assert set().union(*(result.checked for result in runs)) == every
    policy.refresh_from_db()
    assert policy.verify_cursor == f"{backups[0].pk}/files.tar.zst"  # the fourth run began the ring again


def test_delete_removes_the_files_keeps_the_record_and_audits(policy, store, superuser):
    backup = services.backup_run(policy)
    services.delete(backup, actor=superuser)
    assert store.list(f"{backup.location}/") == []
    assert Backup.objects.get(pk=backup.pk).pruned_at is not None
    assert AuditEvent.objects.filter(action="backup.delete", actor_username="alice").exists()
    with pytest.raises(BackupError, match="no stored files"):
        services.verify(backup)


def test_retention_runs_after_a_verified_backup(policy, store):
    policy.keep_last = 1
    policy.save()
    first = services.backup_run(policy)
    second = services.backup_run(policy)
    assert Backup.objects.get(pk=first.pk).pruned_at is not None
    assert store.list(f"{first.location}/") == []
    assert Backup.objects.get(pk=second.pk).pruned_at is None
