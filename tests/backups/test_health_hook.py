"""The "backups" health check: offered through apps.core.health_hooks, shown by the health app, never alerted by it."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from apps.alerts.models import Alert
from apps.backups import health_check
from apps.backups.models import BackupPolicy, Status, Verification
from apps.core import health_hooks
from apps.health import services
from apps.health.checks import Status as HealthStatus
from apps.health.checks import hooked, registry
from tests.backups.records import make_backup

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def policy(db, clock) -> BackupPolicy:
    BackupPolicy.objects.filter(name="default").update(enabled=False)
    return BackupPolicy.objects.create(name="nightly", recipients=RECIPIENT, created_at=NOW - timedelta(days=30))


def test_a_fresh_verified_encrypted_policy_is_ok(policy):
    make_backup(policy, NOW - timedelta(hours=9))

    status, message, details = health_check.check()

    assert (status, details["nightly"]["stale"]) == ("ok", False)
    assert "1 enabled policies" in message


def test_an_unencrypted_policy_is_a_warning(policy):
    policy.recipients = ""
    policy.save()
    make_backup(policy, NOW - timedelta(hours=9))

    status, message, _ = health_check.check()

    assert (status, message) == ("warning", "nightly: encryption is off (no recipients)")


def test_a_stale_policy_is_a_warning(policy):
    make_backup(policy, NOW - timedelta(days=3))

    status, message, _ = health_check.check()

    assert status == "warning"
    assert message == "nightly: the newest verified backup of nightly is 3 days old (limit 2 days)"


@pytest.mark.parametrize(
    ("status", "verification", "says"),
    [
        (Status.FAILED, Verification.UNVERIFIED, "pg_dump: connection refused"),
        (Status.SUCCEEDED, Verification.FAILED, "verification: db-default.pgdump.zst: sha256 differs"),
    ],
)
def test_a_policy_whose_newest_backup_failed_is_critical(policy, status, verification, says):
    make_backup(policy, NOW - timedelta(hours=30))
    failed = make_backup(policy, NOW - timedelta(hours=6), status=status, verification=verification)
    failed.error = "pg_dump: connection refused" if status == Status.FAILED else ""
    failed.verify_error = "db-default.pgdump.zst: sha256 differs"
    failed.save()

    status, message, _ = health_check.check()

    assert status == "critical"
    assert message == f"nightly: the newest backup failed ({says})"


def test_hooked_checks_are_in_the_health_registry_with_their_options(db):  # (targets come from the database)
    by_name = {check.name: check for check in registry.checks()}

    assert by_name["backups"].alerts is False
    assert by_name["backups"].description == "Backup policies: fresh, ok, encrypted."


def test_a_hook_with_an_unknown_option_is_refused():
    with pytest.raises(TypeError, match="unknown health check options"):
        health_hooks.register("x", lambda: ("ok", "", {}), alert_when="critical")


@pytest.mark.django_db(transaction=True)  # the runner runs checks in threads of their own: they read committed rows
def test_the_health_run_shows_the_backups_check_and_fires_no_alert_of_its_own(monkeypatch, settings, clock):
    monkeypatch.setattr(registry, "_checks", {})
    monkeypatch.setattr(registry, "_providers", [hooked.hooked_checks])
    settings.HEALTH_FOR_SECONDS = 0
    BackupPolicy.objects.update(enabled=False)  # the default one, unless an earlier test of this kind removed it
    policy = BackupPolicy.objects.create(name="broken")
    make_backup(policy, NOW - timedelta(hours=2), status=Status.FAILED, verification=Verification.UNVERIFIED)

    results = services.run_and_store()

    (result,) = results
    assert (result.name, result.status) == ("backups", HealthStatus.CRITICAL)
    assert result.message.startswith("broken: the newest backup failed")
    assert "broken: encryption is off" in result.message
    assert not Alert.objects.filter(source="health").exists()
