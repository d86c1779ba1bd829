"""drill(): the newest verified backup restored into scratch targets and checked against its manifest."""

import pytest

from apps.alerts.models import Alert
from apps.audit.models import AuditEvent
from apps.backups import services
from apps.backups.drill import drill
from apps.backups.errors import BackupError
from apps.backups.models import BackupPolicy, Status, Trigger
from tests.backups.restoring import back_up, flip_a_byte, record_scratch_targets, scratch_exists

# A backup runs outside transactions, as in production (see test_services.py).
pytestmark = pytest.mark.django_db(transaction=True)


def drill_alert() -> Alert | None:
    return Alert.objects.filter(source="backups", key="nightly:drill").first()


def test_a_drill_of_the_newest_verified_backup_passes_every_check(tmp_path, settings, monkeypatch):
    scratch = record_scratch_targets(monkeypatch)
    older = back_up(tmp_path, settings)
    newest = services.backup_run(older.policy)
    result = drill(policy=older.policy, trigger=Trigger.SCHEDULE)

    assert result.backup == newest
    assert (result.status, result.error, result.trigger) == (Status.SUCCEEDED, "", Trigger.SCHEDULE)
    assert [check["name"] for check in result.checks] == [
        "checksums",
        "restore:default",
        "migrations",
        "rows:default",
        "files",
    ]
    assert all(check["ok"] for check in result.checks), result.checks
    assert result.duration is not None
    assert AuditEvent.objects.filter(action="backup.drill", outcome="success").exists()
    assert drill_alert() is None
    assert len(scratch) == 1
    assert not scratch_exists(scratch[0])


def test_a_failing_drill_is_stored_and_alerted_and_the_next_passing_one_resolves(tmp_path, settings, monkeypatch):
    backup = back_up(tmp_path, settings)
    flip_a_byte(tmp_path, backup, backup.manifest["artifacts"][-1]["name"])  # found after a database restored
    scratch = record_scratch_targets(monkeypatch)

    failed = drill(backup, policy=backup.policy)
    assert failed.status == Status.FAILED
    assert "SHA-256 does not match" in failed.error
    assert failed.checks[-1]["ok"] is False
    assert drill_alert().is_open
    assert "SHA-256 does not match" in drill_alert().description
    assert AuditEvent.objects.filter(action="backup.drill", outcome="failure").exists()
    assert scratch == []  # checksums are checked before any restore

    passed = drill(services.backup_run(backup.policy), policy=backup.policy)
    assert passed.status == Status.SUCCEEDED, passed.checks
    assert not drill_alert().is_open


def test_a_drill_without_a_verified_backup_says_so(db):
    with pytest.raises(BackupError, match="no verified backup to drill"):
        drill(policy=BackupPolicy.objects.get(name="default"))
