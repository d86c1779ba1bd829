"""Heartbeats through their services: deadlines on the database clock, late and failed runs alert once."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.alerts.models import State
from apps.hooks import heartbeats
from apps.hooks.models import Heartbeat, HeartbeatPing
from apps.hooks.tasks import hooks_tick
from tests.hooks.heartbeat_helpers import alert_of, make_heartbeat, overdue, send
from tests.threads import in_threads

pytestmark = pytest.mark.django_db

SUCCESS, START, FAIL = HeartbeatPing.Kind.SUCCESS, HeartbeatPing.Kind.START, HeartbeatPing.Kind.FAIL


def reloaded(heartbeat: Heartbeat) -> Heartbeat:
    return Heartbeat.objects.get(pk=heartbeat.pk)


# ---------------------------------------------------------------- deadlines


def test_a_success_ping_makes_the_heartbeat_up_until_the_ping_time_plus_period_and_grace():
    heartbeat = make_heartbeat(period_seconds=3600, grace_seconds=300)

    ping = send(heartbeat)

    heartbeat = reloaded(heartbeat)
    assert heartbeat.status == Heartbeat.Status.UP
    assert heartbeat.last_ping_at == ping.at
    assert heartbeat.deadline == ping.at + timedelta(seconds=3900)


def test_the_ping_time_is_the_database_clock_not_the_web_servers():
    heartbeat = make_heartbeat(period_seconds=60, grace_seconds=0)

    with time_machine.travel(datetime(2001, 1, 1, tzinfo=UTC), tick=False):
        ping = send(heartbeat)

    assert abs(ping.at - timezone.now()) < timedelta(minutes=5)
    assert reloaded(heartbeat).deadline == ping.at + timedelta(seconds=60)


def test_a_cron_deadline_is_the_next_fire_time_after_the_ping_in_the_heartbeats_time_zone():
    heartbeat = make_heartbeat(cron="*/15 * * * *", timezone="Asia/Kolkata", grace_seconds=120)  # UTC+05:30

    ping = send(heartbeat)

    deadline = reloaded(heartbeat).deadline
    local = (deadline - timedelta(seconds=120)).astimezone(heartbeats.ZoneInfo("Asia/Kolkata"))
    assert local.minute % 15 == 0 and local.second == 0
    assert timedelta(0) < deadline - timedelta(seconds=120) - ping.at <= timedelta(minutes=15)


@pytest.mark.parametrize(
    ("last_ping", "expected"),
    [
        # Spring: 2026-03-29 02:00 CET -> 03:00 CEST; 03:00 Paris is 01:00 UTC that day (23 h after 02:00 UTC).
        (datetime(2026, 3, 28, 2, 5, tzinfo=UTC), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        # Autumn: 2026-10-25 03:00 CEST -> 02:00 CET; 03:00 Paris is 02:00 UTC that day (25 h after 01:00 UTC).
        (datetime(2026, 10, 24, 1, 5, tzinfo=UTC), datetime(2026, 10, 25, 2, 0, tzinfo=UTC)),
    ],
)
def test_a_cron_in_europe_paris_follows_the_daylight_saving_change(last_ping, expected):
    heartbeat = make_heartbeat(cron="0 3 * * *", timezone="Europe/Paris", grace_seconds=300)
    Heartbeat.objects.filter(pk=heartbeat.pk).update(status=Heartbeat.Status.UP, last_ping_at=last_ping)

    changed = heartbeats.heartbeat_update(reloaded(heartbeat), grace_seconds=600)

    assert heartbeats.next_expected(changed, last_ping) == expected
    assert changed.deadline == expected + timedelta(seconds=600)
    assert reloaded(heartbeat).deadline == expected + timedelta(seconds=600)


def test_a_start_with_a_run_time_limit_moves_the_deadline_to_start_plus_the_limit():
    heartbeat = make_heartbeat(period_seconds=86400, max_runtime_seconds=600)
    send(heartbeat)

    start = send(heartbeat, START)

    heartbeat = reloaded(heartbeat)
    assert heartbeat.status == Heartbeat.Status.STARTED
    assert heartbeat.last_start_at == start.at
    assert heartbeat.deadline == start.at + timedelta(seconds=600)


def test_a_start_without_a_run_time_limit_leaves_the_schedules_deadline():
    heartbeat = make_heartbeat(period_seconds=86400)
    send(heartbeat)
    before = reloaded(heartbeat).deadline

    send(heartbeat, START)

    assert reloaded(heartbeat).deadline == before
    assert reloaded(heartbeat).status == Heartbeat.Status.STARTED


def test_a_new_heartbeat_waits_for_its_first_ping_before_it_can_be_late():
    heartbeat = make_heartbeat()

    assert heartbeat.status == Heartbeat.Status.NEW and heartbeat.deadline is None
    assert heartbeats.check_due() == []


# ---------------------------------------------------------------- alerts


def test_a_late_heartbeat_fires_its_alert_once_however_often_the_tick_runs():
    heartbeat = make_heartbeat(name="nightly-export", severity="critical")
    send(heartbeat)
    overdue(heartbeat)

    first, second = hooks_tick(), hooks_tick()

    assert first["late"] == ["nightly-export"] and second["late"] == []
    alert = alert_of(heartbeat)
    assert alert.state == State.FIRING and alert.fire_count == 1
    assert alert.severity == "critical" and alert.labels == {"heartbeat": "nightly-export"}
    assert "late" in alert.summary and "last ping" in alert.summary
    assert reloaded(heartbeat).status == Heartbeat.Status.LATE


def test_the_late_alert_says_how_late_and_when_the_last_ping_was():
    heartbeat = make_heartbeat(name="hourly", period_seconds=3600, grace_seconds=0)
    send(heartbeat)
    # 30 seconds more: the tick reads the database's clock, which may be a millisecond behind this process's.
    overdue(heartbeat, by=timedelta(hours=2, minutes=1, seconds=30))

    heartbeats.check_due()

    summary = alert_of(heartbeat).summary
    assert re.match(r"Heartbeat hourly is 2 hours, 1 minute late \(last ping \d+ seconds ago, at 20\d\d-", summary)


def test_the_next_success_ping_resolves_the_late_alert():
    heartbeat = make_heartbeat()
    send(heartbeat)
    overdue(heartbeat)
    heartbeats.check_due()

    send(heartbeat)

    assert alert_of(heartbeat).state == State.RESOLVED
    heartbeat = reloaded(heartbeat)
    assert heartbeat.status == Heartbeat.Status.UP and heartbeat.deadline > timezone.now()


def test_a_fail_ping_fires_at_once_and_a_later_success_resolves_it():
    heartbeat = make_heartbeat(name="backup-offsite", severity="warning")

    send(heartbeat, FAIL)

    alert = alert_of(heartbeat)
    assert alert.state == State.FIRING and alert.severity == "warning"
    assert alert.summary == "Heartbeat backup-offsite reported a failure"
    assert reloaded(heartbeat).status == Heartbeat.Status.FAILED
    send(heartbeat)
    assert alert_of(heartbeat).state == State.RESOLVED


def test_a_failed_heartbeat_is_not_marked_late_again_by_the_tick():
    heartbeat = make_heartbeat()
    send(heartbeat, FAIL)
    overdue(heartbeat)

    assert heartbeats.check_due() == []
    assert alert_of(heartbeat).fire_count == 1


def test_a_start_without_success_within_the_run_time_limit_fires_saying_the_run_did_not_finish():
    heartbeat = make_heartbeat(name="db-dump", max_runtime_seconds=600)
    send(heartbeat, START)
    overdue(heartbeat, by=timedelta(minutes=1))

    assert heartbeats.check_due() == ["db-dump"]

    summary = alert_of(heartbeat).summary
    assert summary.startswith("Heartbeat db-dump: the run started at ")
    assert summary.endswith(" did not finish within 10 minutes")
    send(heartbeat)
    assert alert_of(heartbeat).state == State.RESOLVED


def test_a_disabled_heartbeat_never_alerts():
    heartbeat = make_heartbeat(enabled=False)
    Heartbeat.objects.filter(pk=heartbeat.pk).update(status=Heartbeat.Status.UP)
    overdue(heartbeat)

    send(heartbeat, FAIL)

    assert heartbeats.check_due() == []
    assert alert_of(heartbeat) is None
    assert heartbeat.pings.count() == 1  # the ping is still recorded


def test_disabling_resolves_the_alert_and_after_enabling_the_heartbeat_waits_for_a_ping():
    heartbeat = make_heartbeat()
    send(heartbeat, FAIL)

    heartbeats.heartbeat_update(heartbeat, enabled=False)
    assert alert_of(heartbeat).state == State.RESOLVED
    enabled = heartbeats.heartbeat_update(heartbeat, enabled=True)

    assert enabled.status == Heartbeat.Status.NEW and enabled.deadline is None
    assert heartbeats.check_due() == []


def test_deleting_a_heartbeat_resolves_its_alert():
    heartbeat = make_heartbeat()
    send(heartbeat, FAIL)

    heartbeats.heartbeat_delete(heartbeat)

    assert alert_of(heartbeat).state == State.RESOLVED
    assert not Heartbeat.objects.filter(pk=heartbeat.pk).exists()


def test_the_tick_leaves_a_heartbeat_pinged_after_it_was_read():
    """The claim is the row as read: a ping that moved the deadline meanwhile leaves nothing to claim."""
    heartbeat = make_heartbeat()
    send(heartbeat)
    overdue(heartbeat)
    stale = Heartbeat.objects.annotate(db_now=heartbeats.Now()).get(pk=heartbeat.pk)
    send(heartbeat)

    assert heartbeats._mark_late(stale) is False
    assert alert_of(heartbeat) is None and reloaded(heartbeat).status == Heartbeat.Status.UP


@pytest.mark.postgres  # SQLite's in-memory test database locks whole tables between threads
@pytest.mark.django_db(transaction=True)
def test_schedulers_ticking_at_once_fire_each_late_heartbeat_once():
    late = [make_heartbeat(name=f"job-{n}") for n in range(12)]
    for heartbeat in late:
        send(heartbeat)
        overdue(heartbeat)
    marked: list[str] = []

    errors = in_threads(4, 1, lambda writer, n: marked.extend(heartbeats.check_due()))

    assert errors == []
    assert sorted(marked) == sorted(heartbeat.name for heartbeat in late)
    assert [alert_of(heartbeat).fire_count for heartbeat in late] == [1] * 12


# ---------------------------------------------------------------- pings


def test_a_ping_keeps_the_first_10_kb_of_its_body_and_survives_nul_bytes():
    heartbeat = make_heartbeat()

    ping = send(heartbeat, body=b"a\x00b" + b"x" * 20_000)

    stored = HeartbeatPing.objects.get(pk=ping.pk)
    assert len(stored.body) == heartbeats.BODY_KEPT_BYTES
    assert stored.body.startswith("a\ufffdb")


def test_prune_keeps_the_newest_1000_pings_of_each_heartbeat_and_none_older_than_30_days():
    busy, quiet = make_heartbeat(), make_heartbeat()
    now = timezone.now()
    HeartbeatPing.objects.bulk_create(
        [HeartbeatPing(heartbeat=busy, kind=SUCCESS, method="GET", at=now - timedelta(minutes=n)) for n in range(1005)]
        + [HeartbeatPing(heartbeat=quiet, kind=SUCCESS, method="GET", at=now - timedelta(days=d)) for d in (1, 29, 31)]
    )

    assert heartbeats.prune() == 6

    assert busy.pings.count() == 1000
    assert min(busy.pings.values_list("at", flat=True)) == now - timedelta(minutes=999)
    assert sorted(quiet.pings.values_list("at", flat=True)) == [now - timedelta(days=29), now - timedelta(days=1)]


def test_the_tick_is_scheduled_every_hooks_tick_seconds(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["hooks-tick"]

    assert entry["task"] == hooks_tick.name == "apps.hooks.tasks.hooks_tick"
    assert entry["schedule"] == settings.HOOKS_TICK_SECONDS


def test_the_tick_prunes_at_most_once_per_period(settings):
    # A cache of the test's own: the Redis one is shared by the test processes.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tick"}}
    heartbeat = make_heartbeat()
    old = timezone.now() - timedelta(days=40)
    HeartbeatPing.objects.create(heartbeat=heartbeat, kind=SUCCESS, method="GET", at=old)

    first, second = hooks_tick(), hooks_tick()

    assert first["pruned"] == {"heartbeat_pings": 1, "alertmanager_deliveries": 0, "webhook_messages": 0}
    assert second["pruned"] == {}
    assert not heartbeat.pings.exists()


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("values", "fields"),
    [
        ({"period_seconds": 60, "cron": "0 3 * * *"}, {"period_seconds", "cron"}),
        ({"period_seconds": None}, {"period_seconds"}),
        ({"period_seconds": None, "cron": "0 3 * *"}, {"cron"}),
        ({"period_seconds": None, "cron": "0 25 * * *"}, {"cron"}),
        ({"period_seconds": None, "cron": "0 0 30 2 *"}, {"cron"}),  # never fires
        ({"timezone": "Mars/Olympus"}, {"timezone"}),
        ({"timezone": "../../etc/passwd"}, {"timezone"}),
        ({"grace_seconds": -1}, {"grace_seconds"}),
        ({"period_seconds": 0}, {"period_seconds"}),
        ({"max_runtime_seconds": 10**12}, {"max_runtime_seconds"}),
        ({"severity": "page-everyone"}, {"severity"}),
        ({"name": "  "}, {"name"}),
        ({"name": "a\x00b", "description": "\ud800"}, {"name", "description"}),
        ({"period_seconds": None, "cron": "0 3 * * *\x00"}, {"cron"}),
        ({"enabled": None, "timezone": None, "severity": None}, {"enabled", "timezone", "severity"}),
    ],
)
def test_bad_definitions_are_refused_naming_each_field(values, fields):
    with pytest.raises(ValidationError) as refused:
        heartbeats.heartbeat_create(**{"name": "job", "period_seconds": 60, **values})

    assert set(refused.value.message_dict) == fields
    assert not Heartbeat.objects.exists()


def test_a_name_is_unique():
    make_heartbeat(name="nightly")

    with pytest.raises(ValidationError) as refused:
        heartbeats.heartbeat_create(name=" nightly ", period_seconds=60)

    assert refused.value.message_dict == {"name": ["A heartbeat named 'nightly' already exists."]}


def test_a_cron_expression_is_stored_with_its_spaces_collapsed():
    heartbeat = make_heartbeat(cron="  0   3 * * 1-5 ", timezone="Europe/Paris")

    assert heartbeat.cron == "0 3 * * 1-5" and heartbeat.period_seconds is None
