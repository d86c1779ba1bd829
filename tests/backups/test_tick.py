"""The scheduler tick: due backups, verifies and drills are queued once, however many ticks run; freshness alerts."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from celery.signals import after_task_publish
from django.conf import settings

from apps.alerts.models import Alert, State
from apps.backups import tasks
from apps.backups.errors import BackupError
from apps.backups.lease import Lease
from apps.backups.models import BackupPolicy, Status, Verification
from opsportal.celery import app
from tests.backups.records import make_backup
from tests.threads import in_threads

START = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # TIME_ZONE is UTC in the tests unless one sets it


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def published():
    """The backup tasks published to the (in-memory) broker: [(task name, args)]; purged after the test."""
    sent: list[tuple[str, list]] = []
    lock = threading.Lock()

    def record(sender: str, body: tuple, **kwargs) -> None:
        if sender.startswith("apps.backups."):
            with lock:
                sent.append((sender.rsplit(".", 1)[1], list(body[0])))

    after_task_publish.connect(record, weak=False)
    yield sent
    after_task_publish.disconnect(record)
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(app.conf.task_default_queue)


@pytest.fixture
def policy(db) -> BackupPolicy:
    """The default policy (03:00 daily; verify Sundays 04:30; drill Sundays 05:00), backed up 23 hours ago."""
    policy = BackupPolicy.objects.get(name="default")
    make_backup(policy, START - timedelta(hours=23))
    return policy


@pytest.fixture
def captured(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


@pytest.fixture
def tick(captured):
    """Run the tick as beat would; what it queues on commit is published at once."""

    def run() -> dict:
        with captured(execute=True):
            return tasks.backups_tick()

    return run


def test_the_first_tick_plans_the_next_times_and_runs_nothing(policy, clock, published, tick):
    done = tick()

    policy.refresh_from_db()
    assert done == {"run": [], "verify": [], "drill": [], "interrupted": [], "stale": []}
    assert policy.next_run_at == datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    assert policy.next_verify_at == datetime(2026, 12, 6, 4, 30, tzinfo=UTC)
    assert policy.next_drill_at == datetime(2026, 12, 6, 5, 0, tzinfo=UTC)
    assert published == []


def test_a_due_backup_is_queued_once_when_the_tick_runs_twice(policy, clock, published, tick):
    tick()
    clock.move_to(datetime(2026, 11, 30, 3, 0, 30, tzinfo=UTC))

    first = tick()
    second = tick()

    assert (first["run"], second["run"]) == (["default"], [])
    assert published == [("backup_run_task", [policy.pk, "schedule"])]
    policy.refresh_from_db()
    assert policy.next_run_at == datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def test_two_ticks_that_read_the_same_row_claim_it_once(policy, clock, published, tick, captured):
    tick()
    clock.move_to(datetime(2026, 11, 30, 3, 1, tzinfo=UTC))
    read_by_one, read_by_other = BackupPolicy.objects.get(pk=policy.pk), BackupPolicy.objects.get(pk=policy.pk)
    queue = tasks._jobs(policy)["run"][2]

    with captured(execute=True):
        claims = [
            tasks._claim(read, "next_run_at", policy.schedule, tasks.timezone.now(), lambda: queue(policy.pk))
            for read in (read_by_one, read_by_other)
        ]

    assert claims == [True, False]
    assert len(published) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_ticks_on_postgresql_queue_a_due_backup_once(clock, published):
    BackupPolicy.objects.update(enabled=False)  # the default one, unless an earlier test of this kind removed it
    policy = BackupPolicy.objects.create(name="due", next_run_at=START - timedelta(minutes=1))

    errors = in_threads(4, 1, lambda writer, n: tasks.backups_tick())

    assert errors == []
    assert published.count(("backup_run_task", [policy.pk, "schedule"])) == 1


def test_a_missed_time_runs_once_then_the_schedule_resumes(policy, clock, published, tick):
    tick()
    clock.move_to(datetime(2026, 12, 3, 10, 0, tzinfo=UTC))  # the portal was down for three nights

    tick()
    tick()

    assert [name for name, _ in published] == ["backup_run_task"]
    policy.refresh_from_db()
    assert policy.next_run_at == datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


def test_scheduled_verifies_and_drills_are_queued_when_due(policy, clock, published, tick):
    tick()
    clock.move_to(datetime(2026, 12, 6, 5, 0, tzinfo=UTC))

    done = tick()

    assert (done["run"], done["verify"], done["drill"]) == (["default"], ["default"], ["default"])
    assert sorted(name for name, _ in published) == ["backup_drill_task", "backup_run_task", "backup_verify_task"]


def test_a_changed_schedule_moves_the_next_time_without_running(policy, clock, published, tick):
    tick()
    BackupPolicy.objects.filter(pk=policy.pk).update(schedule="0 22 * * *", drill_schedule="")

    tick()

    policy.refresh_from_db()
    assert (policy.next_run_at, policy.next_drill_at) == (datetime(2026, 11, 30, 22, 0, tzinfo=UTC), None)
    assert published == []


def test_disabled_policies_and_invalid_schedules_are_not_run(policy, clock, published, tick):
    BackupPolicy.objects.filter(pk=policy.pk).update(enabled=False, next_run_at=START)
    broken = BackupPolicy.objects.create(name="broken", schedule="0 3 * *", next_run_at=START)

    done = tick()

    assert done["run"] == [] and published == []
    broken.refresh_from_db()
    assert broken.next_run_at == START


def freshness_alert() -> Alert | None:
    return Alert.objects.filter(source="backups", key="default:freshness").first()


def test_a_stale_policy_fires_a_freshness_alert_and_a_new_backup_resolves_it(policy, clock, published, tick):
    assert tick()["stale"] == []
    clock.shift(timedelta(days=1, hours=2))  # the newest verified backup is 49 hours old; the limit is 2 x 1 day

    assert tick()["stale"] == ["default"]
    alert = freshness_alert()
    assert (alert.state, alert.severity) == (State.FIRING, "warning")
    assert alert.summary == "Backups of default are stale"
    assert alert.description == "the newest verified backup of default is 2 days, 1 hour old (limit 2 days)"

    make_backup(policy, tasks.timezone.now() - timedelta(minutes=5))
    tick()

    assert freshness_alert().state == State.RESOLVED


def test_only_a_verified_backup_counts_as_fresh(policy, clock, tick):
    clock.shift(timedelta(days=2))
    make_backup(policy, tasks.timezone.now(), verification=Verification.FAILED)
    make_backup(policy, tasks.timezone.now(), verification=Verification.UNVERIFIED)

    assert tick()["stale"] == ["default"]


def test_a_new_policy_is_not_stale_before_it_could_have_run(db, clock, tick):
    BackupPolicy.objects.filter(name="default").update(enabled=False)
    BackupPolicy.objects.create(name="new", max_age=timedelta(hours=6))

    assert tick()["stale"] == []
    clock.shift(timedelta(hours=7))
    assert tick()["stale"] == ["new"]


def test_a_killed_run_is_failed_and_alerted_once_its_lock_expired(policy, clock, tick):
    killed = make_backup(policy, START - timedelta(minutes=10), status=Status.RUNNING)
    lease = Lease.acquire(policy)  # the killed process's lock, not expired yet

    assert tick()["interrupted"] == []
    killed.refresh_from_db()
    assert killed.status == Status.RUNNING

    clock.shift(timedelta(seconds=settings.BACKUP_LOCK_SECONDS + 1))
    assert tick()["interrupted"] == ["default"]
    killed.refresh_from_db()
    assert (killed.status, killed.finished_at) == (Status.FAILED, tasks.timezone.now())
    assert killed.error.startswith("interrupted")
    alert = Alert.objects.get(source="backups", key="default")
    assert alert.state == State.FIRING and alert.description == killed.error
    with pytest.raises(BackupError, match="lost the lock"):
        lease.renew()  # had the process only stalled, it stops at its next progress report
    assert tick()["interrupted"] == []
