"""Metric alert rules: each aggregation against a hand computation, the `for` rule on a controllable clock,
and alerts fired and resolved through the real alerts engine."""

import subprocess
import sys
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.alerts import services as alerts
from apps.alerts.models import Alert, EscalationPolicy, EscalationStep, Notification, NotificationChannel, Route
from apps.metrics.models import MetricRule
from apps.metrics.rule_tasks import CLAIM_KEY, metrics_rules_task
from apps.metrics.rules import rules_evaluate
from tests.metrics.rules_support import START, make_rule, record

pytestmark = pytest.mark.django_db
State = MetricRule.State
# Samples at -50 ... 0 s: [1, 5, 3, 9, 7, 2]
POINTS = {-50: 1.0, -40: 5.0, -30: 3.0, -20: 9.0, -10: 7.0, 0: 2.0}


@pytest.fixture(autouse=True)
def only_our_rules():
    """The shipped default rules are tested on their own; here they would evaluate the same series."""
    MetricRule.objects.all().delete()


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def evaluated(rule: MetricRule) -> MetricRule:
    rules_evaluate(now=START)
    return MetricRule.objects.get(pk=rule.pk)


@pytest.mark.parametrize(
    ("aggregation", "window", "expected"),
    [
        ("avg", 60, 27 / 6),
        ("max", 60, 9.0),
        ("min", 60, 1.0),
        ("rate", 60, (2.0 - 1.0) / 50),  # first to last sample
        ("p95", 60, 7 + (9 - 7) * 0.75),  # sorted 1 2 3 5 7 9, rank 0.95 * 5 = 4.75
        ("avg", 25, (9 + 7 + 2) / 3),  # only -20, -10, 0 are in the window
        ("max", 25, 9.0),
        ("min", 25, 2.0),
        ("rate", 25, (2.0 - 9.0) / 20),
        ("p95", 25, 7 + (9 - 7) * 0.9),  # sorted 2 7 9, rank 0.95 * 2 = 1.9
    ],
)
def test_each_aggregation_matches_a_hand_computation(aggregation, window, expected):
    record("test.load", POINTS)
    rule = make_rule(series="test.load", aggregation=aggregation, window_seconds=window, threshold=1000)

    assert evaluated(rule).last_value == pytest.approx(expected)


def test_samples_outside_the_window_and_after_now_are_left_out():
    record("test.load", {-61: 500.0, -30: 10.0, 5: 900.0})
    rule = make_rule(series="test.load", aggregation="max", window_seconds=60)

    assert evaluated(rule).last_value == 10.0


def test_rate_of_a_single_sample_is_no_data():
    record("test.load", {-5: 3.0})
    rule = make_rule(series="test.load", aggregation="rate")

    assert evaluated(rule).state == State.NO_DATA


def test_a_series_without_samples_in_the_window_is_no_data_and_fires_nothing():
    record("test.load", {-3600: 99.0})
    rule = make_rule(series="test.load", threshold=50)

    rule = evaluated(rule)

    assert rule.state == State.NO_DATA and rule.last_value is None
    assert not Alert.objects.exists()


@pytest.mark.parametrize(
    ("comparison", "threshold", "state"),
    [(">", 4.5, State.OK), (">=", 4.5, State.FIRING), ("<", 4.6, State.FIRING), ("<=", 4.4, State.OK)],
)
def test_comparisons(comparison, threshold, state):
    record("test.load", POINTS)

    assert evaluated(make_rule(series="test.load", comparison=comparison, threshold=threshold)).state == state


def test_absent_counts_the_seconds_since_the_last_sample_even_with_none_in_the_window():
    record("test.heartbeat", {-45: 1.0})
    rule = make_rule(series="test.heartbeat", aggregation="absent", window_seconds=10, threshold=30)

    rule = evaluated(rule)

    assert rule.last_value == pytest.approx(45) and rule.state == State.FIRING
    assert Alert.objects.get(source="metrics", key=rule.name).value == pytest.approx(45)


def test_absent_is_no_data_until_the_series_was_ever_sampled():
    rule = make_rule(series="test.never", aggregation="absent", threshold=30)

    assert evaluated(rule).state == State.NO_DATA
    assert not Alert.objects.exists()


def test_a_condition_held_past_for_fires_once(clock):
    record("test.load", {offset: 95.0 for offset in range(-60, 121, 5)})
    rule = make_rule(series="test.load", for_seconds=60)
    states = []
    for _ in range(6):  # 0, 15, 30, 45, 60, 75 s
        rules_evaluate()
        states.append(MetricRule.objects.get(pk=rule.pk).state)
        clock.shift(timedelta(seconds=15))

    assert states == [State.PENDING] * 4 + [State.FIRING] * 2
    alert = Alert.objects.get(source="metrics", key="cpu-high")
    assert alert.fire_count == 1 and alert.state == "firing"
    assert MetricRule.objects.get(pk=rule.pk).pending_since == START


def test_a_condition_flapping_within_for_fires_nothing(clock):
    # Bad, good, bad, good ... every 15 s for two minutes: never held 60 s in a row.
    record("test.load", {offset: 95.0 if (offset // 15) % 2 == 0 else 5.0 for offset in range(0, 121, 15)})
    rule = make_rule(series="test.load", aggregation="max", window_seconds=10, for_seconds=60)
    states = set()
    for _ in range(9):
        rules_evaluate()
        states.add(MetricRule.objects.get(pk=rule.pk).state)
        clock.shift(timedelta(seconds=15))

    assert states == {State.PENDING, State.OK}
    assert not Alert.objects.exists()


def test_a_pending_for_starts_again_after_evaluations_were_missed(clock):
    record("test.load", {offset: 95.0 for offset in range(-60, 400, 5)})
    rule = make_rule(series="test.load", for_seconds=60)
    rules_evaluate()
    clock.shift(timedelta(seconds=15))
    rules_evaluate()
    clock.shift(timedelta(seconds=120))  # the scheduler was down for 8 intervals: the condition went unseen

    rules_evaluate()

    rule = MetricRule.objects.get(pk=rule.pk)
    assert rule.state == State.PENDING and rule.pending_since == START + timedelta(seconds=135)
    assert not Alert.objects.exists()


@pytest.fixture
def on_call():
    """A default route that notifies one webhook channel at once (group_wait 0)."""
    channel = NotificationChannel.objects.create(name="pager", kind="webhook", url="http://127.0.0.1:9/", internal=True)
    policy = EscalationPolicy.objects.create(name="on-call")
    EscalationStep.objects.create(policy=policy, position=0).channels.set([channel])
    Route.objects.create(name="default", is_default=True, policy=policy, group_wait_seconds=0)
    return channel


def test_fire_then_resolve_through_the_alerts_engine(clock, on_call):
    record("test.load", {-30: 91.0, -20: 93.0, -10: 95.0})
    rule = make_rule(series="test.load", labels={"team": "web"})

    summary = rules_evaluate()

    assert summary["fired"] == 1 and summary["firing"] == 1
    alert = Alert.objects.get(source="metrics", key="cpu-high")
    assert alert.severity == "critical" and alert.state == "firing"
    assert alert.summary == "CPU at 93 % (over 80 % for 1m) on test.load"
    assert alert.labels == {"team": "web", "series": "test.load"}
    assert alert.value == pytest.approx(93.0)
    assert Notification.objects.filter(alerts=alert, kind=Notification.Kind.FIRING, channel=on_call).exists()

    clock.shift(timedelta(seconds=15))
    assert rules_evaluate()["firing"] == 1  # still firing: not fired again
    assert Alert.objects.get(pk=alert.pk).fire_count == 1

    record("test.load", {-5: 20.0, 0: 10.0}, now=START + timedelta(seconds=75))
    clock.shift(timedelta(seconds=60))
    summary = rules_evaluate()

    assert summary["resolved"] == 1 and MetricRule.objects.get(pk=rule.pk).state == State.OK
    assert Alert.objects.get(pk=alert.pk).state == "resolved"
    assert Notification.objects.filter(alerts=alert, kind=Notification.Kind.RESOLVED, channel=on_call).exists()


def test_losing_the_data_resolves_a_firing_alert(clock):
    record("test.load", {-10: 95.0})
    make_rule(series="test.load")
    rules_evaluate()
    clock.shift(timedelta(minutes=5))

    rules_evaluate()

    assert Alert.objects.get(key="cpu-high").state == "resolved"


@pytest.mark.parametrize("retire", ["disable", "delete"])
def test_a_disabled_or_deleted_rule_has_its_alert_resolved_at_the_next_tick(clock, retire):
    record("test.load", {-10: 95.0})
    rule = make_rule(series="test.load")
    rules_evaluate()
    if retire == "disable":
        MetricRule.objects.filter(pk=rule.pk).update(enabled=False)
    else:
        rule.delete()

    assert rules_evaluate()["resolved"] == 1
    assert Alert.objects.get(key="cpu-high").state == "resolved"
    if retire == "disable":
        assert MetricRule.objects.get(pk=rule.pk).state == State.OK


def test_an_alert_resolved_by_hand_while_the_condition_holds_fires_again(clock, superuser):
    record("test.load", {-10: 95.0, 0: 95.0})
    make_rule(series="test.load")
    rules_evaluate()
    alerts.alert_resolve(source="metrics", key="cpu-high", actor=superuser)
    clock.shift(timedelta(seconds=5))

    assert rules_evaluate()["fired"] == 1
    alert = Alert.objects.get(key="cpu-high")
    assert alert.state == "firing" and alert.episode == 2


def test_a_severity_edited_while_firing_updates_the_open_alert(clock):
    record("test.load", {-10: 95.0})
    rule = make_rule(series="test.load")
    rules_evaluate()
    MetricRule.objects.filter(pk=rule.pk).update(severity="warning")

    rules_evaluate()

    alert = Alert.objects.get(key="cpu-high")
    assert alert.severity == "warning" and alert.episode == 1


def test_a_bad_summary_saved_outside_the_admin_falls_back_and_never_stops_evaluation(clock):
    record("test.load", {-10: 95.0})
    make_rule(series="test.load", summary="{value.__class__} {nope} {value:d}")

    assert rules_evaluate()["fired"] == 1
    assert Alert.objects.get(key="cpu-high").summary == "cpu-high: avg of test.load is 95 (> 80)"


def test_a_rule_the_engine_refuses_is_counted_and_the_others_still_fire(clock):
    record("test.load", {-10: 95.0})
    make_rule(name="bad-labels", series="test.load", labels={"not a label!": "x"})
    make_rule(name="good", series="test.load")

    summary = rules_evaluate()

    assert summary["failed"] == 1 and summary["fired"] == 1
    assert list(Alert.objects.values_list("key", flat=True)) == ["good"]


def test_the_rules_disabled_are_not_evaluated(clock):
    record("test.load", {-10: 95.0})
    rule = make_rule(series="test.load", enabled=False)

    assert rules_evaluate()["rules"] == 0
    assert MetricRule.objects.get(pk=rule.pk).last_evaluated_at is None


def steady_tick_queries() -> list[str]:
    rules_evaluate()  # a first tick writes pending/ok states; count a steady one
    with CaptureQueriesContext(connection) as queries:
        rules_evaluate()
    return [query["sql"] for query in queries.captured_queries]


def test_one_tick_reads_every_series_at_once_whatever_the_number_of_rules(clock):
    for index in range(5):
        record(f"test.s{index}", {-30: 1.0, -10: 2.0})

    def add_rules(first: int, last: int) -> None:
        for index in range(first, last):
            aggregation, window = ["avg", "max", "p95", "rate"][index % 4], [30, 60, 300][index % 3]
            make_rule(name=f"r{index}", series=f"test.s{index % 5}", aggregation=aggregation,
                      window_seconds=window, threshold=1000)  # fmt: skip

    add_rules(0, 5)
    few = steady_tick_queries()
    add_rules(5, 200)
    many = steady_tick_queries()

    def reads(queries: list[str]) -> list[str]:
        # Not the audit context PostgreSQL is told before each write.
        return [sql for sql in queries if sql.startswith("SELECT") and "set_config" not in sql]

    # rules, series, samples (one query for every series), open alerts
    assert len(reads(many)) == len(reads(few)) == 4
    assert sum('FROM "metrics_sample"' in sql for sql in many) == 1
    # The states in bulk (SQLite's cap on parameters splits it), and the disabled rules' reset.
    writes = [sql for sql in many if sql.startswith("UPDATE")]
    assert len(writes) <= (2 if connection.vendor == "postgresql" else 4)


def test_the_task_evaluates_once_per_claim(clock, settings):
    record("test.load", {-10: 95.0})
    make_rule(series="test.load")
    cache.delete(CLAIM_KEY)

    assert metrics_rules_task()["fired"] == 1
    assert "skipped" in metrics_rules_task()
    cache.delete(CLAIM_KEY)


def test_the_evaluation_is_scheduled_every_interval_with_a_task_the_workers_know():
    entry = settings.CELERY_BEAT_SCHEDULE["metrics-rules"]
    assert entry["task"] == "apps.metrics.rule_tasks.metrics_rules_task"
    assert entry["schedule"] == float(settings.ALERTS_EVAL_INTERVAL_SECONDS) == 15.0
    # A fresh process, as a worker starts: Celery's autodiscovery imports tasks.py modules only.
    code = "import django; django.setup(); from opsportal.celery import app; print(sorted(app.tasks))"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert entry["task"] in found.stdout
