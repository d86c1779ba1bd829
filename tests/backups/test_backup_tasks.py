"""The task bodies the tick queues: they fetch the policy and call the services; a busy policy is skipped."""

import pytest

from apps.backups import tasks
from apps.backups.lease import Lease
from apps.backups.models import Backup, BackupPolicy, Status, Trigger, Verification
from tests.backups.test_services import media, store  # noqa: F401 - fixtures: a local storage, MEDIA_ROOT

pytestmark = pytest.mark.django_db(transaction=True)  # a backup runs outside transactions


@pytest.fixture
def policy(store, media) -> BackupPolicy:  # noqa: F811 - the imported fixtures
    return BackupPolicy.objects.create(name="nightly", keep_last=2, keep_daily=0, keep_weekly=0, keep_monthly=0)


def test_the_run_task_backs_up_verifies_and_prunes(policy):
    for _ in range(3):
        done = tasks.backup_run_task(policy.pk, Trigger.SCHEDULE)

    backup = Backup.objects.get(pk=done["backup"])
    assert done == {"policy": "nightly", "backup": backup.pk, "status": Status.SUCCEEDED}
    assert (backup.trigger, backup.verification) == (Trigger.SCHEDULE, Verification.OK)
    assert Backup.objects.filter(pruned_at__isnull=False).count() == 1  # keep_last=2


def test_the_run_task_skips_a_policy_whose_lock_is_held(policy):
    lease = Lease.acquire(policy)
    try:
        assert tasks.backup_run_task(policy.pk) == {"skipped": "busy"}
    finally:
        lease.release()
    assert not Backup.objects.exists()


def test_a_task_for_a_deleted_policy_does_nothing():
    assert tasks.backup_run_task(999_999) == {"skipped": "no such policy"}
    assert tasks.backup_verify_task(999_999) == {"skipped": "no such policy"}
    assert tasks.backup_drill_task(999_999) == {"skipped": "no such policy"}


def test_the_verify_task_reads_the_policy_sample(policy):
    tasks.backup_run_task(policy.pk)
    BackupPolicy.objects.filter(pk=policy.pk).update(verify_sample_percent=100)

    done = tasks.backup_verify_task(policy.pk)

    assert done["ok"] is True and done["errors"] == []
    assert len(done["checked"]) == 2  # the database dump and the media archive


# ENGINES' drill tests count the scratch databases left on the server: none of ours may be alive meanwhile.
@pytest.mark.xdist_group("backup_scratch_databases")
def test_the_drill_task_drills_the_newest_verified_backup(policy):
    backup = Backup.objects.get(pk=tasks.backup_run_task(policy.pk)["backup"])

    done = tasks.backup_drill_task(policy.pk)

    drill = backup.drills.get()
    assert done == {"policy": "nightly", "drill": drill.pk, "status": Status.SUCCEEDED}
    assert drill.trigger == Trigger.SCHEDULE


def test_the_drill_task_with_nothing_to_drill_says_so(policy):
    done = tasks.backup_drill_task(policy.pk)

    assert done["status"] == "not run" and done["error"]
