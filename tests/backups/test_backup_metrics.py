"""Backups on /metrics: per policy, the newest success's time, duration, size and verification, and running."""

import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from apps.backups.models import BackupPolicy, Status, Verification
from tests.backups.records import make_backup
from tests.metrics.test_export import promtool, samples, scrape

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def backups():
    default = BackupPolicy.objects.get(name="default")
    make_backup(default, NOW - timedelta(days=2), size_bytes=900)
    make_backup(default, NOW - timedelta(days=1), duration=timedelta(seconds=75), size_bytes=1234)
    make_backup(default, NOW - timedelta(hours=1), status=Status.FAILED, verification=Verification.UNVERIFIED)
    hourly = BackupPolicy.objects.create(name="hourly", lock_token="abc", lock_expires_at=NOW + timedelta(days=3650))
    make_backup(hourly, NOW - timedelta(minutes=30), verification=Verification.UNVERIFIED)
    BackupPolicy.objects.create(name="never-ran")


def test_the_newest_successful_backup_of_each_policy_is_exported(client, backups):
    found = samples(scrape(client))

    default, hourly = (("policy", "default"),), (("policy", "hourly"),)
    newest_finished = NOW - timedelta(days=1) + timedelta(seconds=75)
    assert found[("opsportal_backup_last_success_timestamp_seconds", default)] == newest_finished.timestamp()
    assert found[("opsportal_backup_last_duration_seconds", default)] == 75
    assert found[("opsportal_backup_last_size_bytes", default)] == 1234
    assert found[("opsportal_backup_last_verified", default)] == 1
    assert found[("opsportal_backup_last_verified", hourly)] == -1
    assert found[("opsportal_backup_running", default)] == 0
    assert found[("opsportal_backup_running", hourly)] == 1
    assert found[("opsportal_backup_running", (("policy", "never-ran"),))] == 0
    assert ("opsportal_backup_last_size_bytes", (("policy", "never-ran"),)) not in found


def test_the_export_with_backups_passes_promtool_check_metrics(client, backups):
    text = scrape(client)

    checked = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)

    assert checked.returncode == 0, checked.stdout + checked.stderr
