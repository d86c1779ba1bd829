"""Pruning a policy's stored backups: what the plan deletes goes (files and all, the row kept as history),
with a dry run that says what would go and why, and an audit event."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from apps.audit.models import AuditEvent
from apps.backups import retention
from apps.backups.models import Backup, BackupPolicy, Status, Verification
from apps.backups.storage import get_storage
from tests.backups.records import make_backup

pytestmark = pytest.mark.django_db
LAST = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


@pytest.fixture
def policy(settings, tmp_path) -> BackupPolicy:
    settings.BACKUP_STORAGES = {"local": {"kind": "local", "path": tmp_path / "backups"}}
    return BackupPolicy.objects.create(name="nightly", keep_daily=3, keep_weekly=0, keep_monthly=0)


def stored(policy: BackupPolicy, started_at: datetime, **options) -> Backup:
    """A backup row with a file under its location in the policy's storage."""
    backup = make_backup(policy, started_at, **options)
    with get_storage(policy.storage).writer(f"{backup.location}/files.tar.zst") as out:
        out.write(b"archive")
    return backup


def files_of(backup: Backup) -> list[str]:
    return get_storage(backup.storage).list(backup.location + "/")


@pytest.fixture
def timeline(policy) -> list[Backup]:
    """Five nightly backups, the newest verified one two nights ago, and a failed run among them."""
    backups = [stored(policy, LAST - timedelta(days=n)) for n in range(5, 1, -1)]
    backups.append(stored(policy, LAST - timedelta(days=4, hours=1), status=Status.FAILED))
    backups.append(stored(policy, LAST - timedelta(days=1), verification=Verification.FAILED))
    backups.append(stored(policy, LAST, verification=Verification.UNVERIFIED))
    return backups


def test_a_dry_run_says_what_would_go_and_why_and_changes_nothing(policy, timeline):
    result = retention.prune(policy, dry_run=True)

    kept = {entry.id: entry.reasons for entry in result.keep}
    newest_verified = timeline[3]  # two nights ago
    assert kept == {
        timeline[-1].pk: ["daily 2026-11-30"],
        timeline[-2].pk: ["daily 2026-11-29"],
        newest_verified.pk: ["daily 2026-11-28", "newest verified"],
    }
    assert [entry.id for entry in result.delete] == [timeline[2].pk, timeline[1].pk, timeline[4].pk, timeline[0].pk]
    assert result.lines()[0] == "policy nightly: keep 3, would delete 4 (dry run)"
    assert "(daily 2026-11-28, newest verified)" in result.lines()[3]
    assert json.loads(json.dumps(result.as_dict()))["dry_run"] is True
    assert all(files_of(backup) for backup in timeline)
    assert not Backup.objects.filter(pruned_at__isnull=False).exists()
    assert not AuditEvent.objects.filter(action="backup.prune").exists()


def test_prune_deletes_the_files_keeps_the_rows_and_is_audited(policy, timeline, superuser):
    result = retention.prune(policy, dry_run=False, actor=superuser)

    assert result.ok and result.lines()[0] == "policy nightly: kept 3, deleted 4"
    gone = {entry.id for entry in result.delete}
    for backup in timeline:
        backup.refresh_from_db()
        assert (backup.pruned_at is not None) == (backup.pk in gone)
        assert bool(files_of(backup)) == (backup.pk not in gone)
    event = AuditEvent.objects.get(action="backup.prune")
    assert sorted(event.details["deleted"]) == sorted(gone)
    assert event.actor_id == superuser.pk


def test_pruning_again_deletes_nothing(policy, timeline):
    retention.prune(policy, dry_run=False)

    again = retention.prune(policy, dry_run=False)

    assert again.delete == [] and len(again.keep) == 3


def test_a_running_backup_is_never_touched(policy, timeline):
    running = stored(policy, LAST - timedelta(days=30), status=Status.RUNNING, verification=Verification.UNVERIFIED)

    result = retention.prune(policy, dry_run=False)

    assert running.pk not in {entry.id for entry in result.delete + result.keep}
    assert files_of(running)
