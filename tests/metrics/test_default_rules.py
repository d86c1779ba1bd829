"""The rules a fresh install ships with, and the dead-man's switch among them."""

from datetime import timedelta

import pytest

from apps.alerts.models import Alert
from apps.metrics.models import MetricRule
from apps.metrics.rules import rules_evaluate
from tests.metrics.rules_support import START, record

pytestmark = pytest.mark.django_db


def test_the_default_rules_exist_after_migrate():
    rules = {rule.name: rule for rule in MetricRule.objects.all()}
    shipped = {
        name: (r.series, r.aggregation, r.comparison, r.threshold, r.for_seconds, r.severity)
        for name, r in rules.items()
    }

    assert shipped == {
        "http-5xx-rate": ("http.5xx.percent", "avg", ">", 5.0, 300, "warning"),
        "http-latency-p95": ("http.latency.p95.ms", "avg", ">", 1000.0, 120, "warning"),
        "memory-high": ("system.memory.percent", "avg", ">", 80.0, 60, "critical"),
        "disk-full": ("system.disk.percent", "max", ">", 90.0, 0, "critical"),
        "metrics-not-collected": ("system.cpu.percent", "absent", ">", 30.0, 0, "critical"),
    }
    assert all(rule.enabled for rule in rules.values())


def test_a_fresh_install_has_no_data_and_fires_nothing():
    summary = rules_evaluate(now=START)

    assert summary == {"rules": 5, "no_data": 5}
    assert not Alert.objects.exists()


def test_the_dead_mans_switch_fires_30_s_after_the_last_collection_and_resolves_on_the_next():
    record("system.cpu.percent", {0: 12.0})
    assert rules_evaluate(now=START + timedelta(seconds=30))["no_data"] == 4  # 30 s is not over 30 s

    rules_evaluate(now=START + timedelta(seconds=31))
    alert = Alert.objects.get(source="metrics", key="metrics-not-collected")
    assert alert.severity == "critical" and alert.state == "firing"
    assert alert.summary == "No metrics collected for 31 s (over 30 s): is the collector running?"

    record("system.cpu.percent", {40: 15.0})
    rules_evaluate(now=START + timedelta(seconds=45))
    assert Alert.objects.get(pk=alert.pk).state == "resolved"


def test_memory_over_80_percent_for_a_minute_fires_a_critical_alert():
    record("system.memory.percent", {offset: 85.0 for offset in range(-60, 61, 5)})
    for offset in (0, 15, 30, 45):
        rules_evaluate(now=START + timedelta(seconds=offset))
        assert not Alert.objects.filter(key="memory-high").exists()

    rules_evaluate(now=START + timedelta(seconds=60))

    alert = Alert.objects.get(key="memory-high")
    assert alert.severity == "critical" and alert.summary == "Memory 85 % used (over 80 % for a minute)"


def test_a_deleted_default_rule_is_not_recreated(django_db_setup):
    # The rows come from a data migration, which runs once per database: nothing else creates them.
    from django.core.management import call_command

    MetricRule.objects.filter(name="disk-full").delete()
    call_command("migrate", "metrics", verbosity=0)

    assert not MetricRule.objects.filter(name="disk-full").exists()
