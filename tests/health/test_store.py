"""The scheduled run: history, latest state, the `for` rule that fires and resolves alerts, pruning, broadcast."""

import json
from datetime import timedelta

import pytest
from django.core.cache import cache

from apps.alerts.models import Alert, State
from apps.health import services
from apps.health.checks import Status
from apps.health.models import CheckResult, CheckState
from apps.health.tasks import RUN_CLAIM_KEY, health_run_task
from tests.broadcasts import listen
from tests.health.conftest import START

pytestmark = pytest.mark.django_db


def alert(name: str) -> Alert | None:
    return Alert.objects.filter(source="health", key=name).first()


def later(clock, seconds: float) -> None:
    clock.shift(timedelta(seconds=seconds))
    services.run_and_store()


def test_a_run_stores_history_and_the_latest_state_of_each_check(scripted, clock):
    scripted.add("db", message="SELECT 1 in 2 ms")
    scripted.add("disk", Status.WARNING, "85 % used")

    services.run_and_store()
    clock.shift(timedelta(seconds=30))
    scripted.set("disk", Status.CRITICAL, "95 % used")
    services.run_and_store()

    assert CheckResult.objects.count() == 4
    assert [(r.status, r.message) for r in services.history("disk")] == [
        ("critical", "95 % used"),
        ("warning", "85 % used"),
    ]
    db, disk = services.latest()
    assert (db.name, db.status, db.since, db.checked_at) == ("db", "ok", START, START + timedelta(seconds=30))
    assert (disk.status, disk.message, disk.since) == ("critical", "95 % used", START + timedelta(seconds=30))


def test_latest_is_one_query_however_many_checks(scripted, django_assert_num_queries):
    for n in range(20):
        scripted.add(f"check-{n:02}")
    services.run_and_store()

    with django_assert_num_queries(1):
        states = services.latest()

    assert len(states) == 20 and states[0].as_dict()["name"] == "check-00"


def test_a_check_bad_for_longer_than_its_for_duration_fires_an_alert_and_recovery_resolves_it(scripted, clock):
    scripted.add("redis", Status.CRITICAL, "connection refused")

    services.run_and_store()
    later(clock, 59)
    assert alert("redis") is None  # bad for 59 s of its 60

    later(clock, 1)
    fired = alert("redis")
    assert (fired.state, fired.severity, fired.summary) == (State.FIRING, "critical", "redis: connection refused")
    assert fired.labels == {"check": "redis", "status": "critical"}
    assert CheckState.objects.get(name="redis").alerted

    later(clock, 30)
    assert alert("redis").fire_count == 1  # still bad: nobody is told again

    scripted.set("redis", Status.OK, "PING in 1 ms")
    later(clock, 30)
    assert alert("redis").state == State.RESOLVED
    assert not CheckState.objects.get(name="redis").alerted


def test_flapping_within_the_for_duration_fires_nothing(scripted, clock):
    scripted.add("api", Status.CRITICAL, "HTTP 503")
    for _ in range(10):  # 50 s bad, 10 s good, over and over
        services.run_and_store()
        later(clock, 50)
        scripted.set("api", Status.OK)
        later(clock, 10)
        scripted.set("api", Status.CRITICAL, "HTTP 503")

    assert alert("api") is None
    assert CheckResult.objects.filter(name="api", status="critical").count() == 20


def test_a_warning_alerts_only_checks_that_say_so(scripted, clock):
    scripted.add("disk", Status.WARNING, "85 % used", alert_on=Status.WARNING, for_seconds=0)
    scripted.add("memory", Status.WARNING, "85 % used", for_seconds=0)

    services.run_and_store()

    assert alert("disk").severity == "warning"
    assert alert("memory") is None


def test_a_worse_status_updates_the_open_alerts_severity(scripted, clock):
    scripted.add("disk", Status.WARNING, "85 % used", alert_on=Status.WARNING, for_seconds=0)
    services.run_and_store()

    scripted.set("disk", Status.CRITICAL, "95 % used")
    later(clock, 30)

    fired = alert("disk")
    assert (fired.severity, fired.summary, fired.fire_count) == ("critical", "disk: 95 % used", 2)


def test_a_removed_check_loses_its_state_and_its_alert_is_resolved(scripted, clock, only_checks):
    scripted.add("gone", Status.CRITICAL, "down", for_seconds=0)
    services.run_and_store()
    assert alert("gone").state == State.FIRING

    only_checks.unregister("gone")
    scripted.add("other")
    later(clock, 30)

    assert alert("gone").state == State.RESOLVED
    assert [state.name for state in services.latest()] == ["other"]
    assert CheckResult.objects.filter(name="gone").exists()  # its history stays until pruned


@pytest.mark.xdist_group("health_run_claim")  # one claim key in a Redis cache shared by the test processes
def test_history_older_than_the_retention_is_pruned(scripted, clock, settings):
    settings.HEALTH_HISTORY_DAYS = 7
    scripted.add("db")
    services.run_and_store()
    later(clock, 6 * 86400)

    clock.shift(timedelta(days=1, seconds=1))
    cache.delete(RUN_CLAIM_KEY)
    result = health_run_task()

    assert result == {"checks": 1, "overall": "ok", "pruned": 1}
    assert sorted(CheckResult.objects.values_list("checked_at", flat=True)) == [
        START + timedelta(days=6),
        START + timedelta(days=7, seconds=1),
    ]


@pytest.mark.xdist_group("health_run_claim")
def test_a_task_delivered_twice_checks_once(scripted):
    scripted.add("db")
    cache.delete(RUN_CLAIM_KEY)

    assert health_run_task()["checks"] == 1
    assert "skipped" in health_run_task()
    cache.delete(RUN_CLAIM_KEY)  # as when the claim (half an interval) has run out
    assert health_run_task()["checks"] == 1
    assert scripted.calls == {"db": 2}


def test_the_task_is_scheduled_every_health_interval(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["health-run"]
    assert entry == {"task": "apps.health.tasks.health_run_task", "schedule": float(settings.HEALTH_INTERVAL_SECONDS)}


@pytest.mark.django_db(transaction=True)
def test_results_are_broadcast_on_the_health_topic_after_commit(scripted):
    scripted.add("db", message="SELECT 1 in 2 ms")
    scripted.add("disk", Status.WARNING, "85 % used")
    ours = lambda payload: [c["message"] for c in payload["checks"]] == ["SELECT 1 in 2 ms", "85 % used"]  # noqa: E731

    payloads, _ = listen("health", services.run_and_store, where=ours)  # (other test processes broadcast too)

    (payload,) = json.loads(json.dumps(payloads))  # as a browser would get it
    assert payload["type"] == "results"
    assert payload["data"]["overall"] == "warning"
    assert [(c["name"], c["status"], c["message"]) for c in payload["data"]["checks"]] == [
        ("db", "ok", "SELECT 1 in 2 ms"),
        ("disk", "warning", "85 % used"),
    ]
