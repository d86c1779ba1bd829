"""/metrics exports the portal's own state (alerts, health, audit, dashboard clients, collection lag,
rule states), in output promtool accepts; a family whose database read fails is left out, never a 500."""

import os
import shutil
import subprocess
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.db import connection
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from apps.alerts.services import alert_fire
from apps.audit.models import AuditEvent
from apps.core.prometheus import Family, FamilyCollector
from apps.health.models import CheckState
from apps.metrics.models import ProcessReport, Series
from apps.metrics.reporting import Reporter
from apps.metrics.rules import rules_evaluate

pytestmark = pytest.mark.django_db


def scrape(client) -> str:
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == HTTPStatus.OK
    return response.content.decode()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted label items): value} of the opsportal_ families."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("opsportal_"):
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture
def portal_state(superuser):  # the user's creation is an audit event
    now = timezone.now()
    alert_fire(source="test", key="a", severity="critical", summary="a")
    alert_fire(source="test", key="b", severity="critical", summary="b")
    alert_fire(source="test", key="c", severity="warning", summary="c")
    CheckState.objects.create(name="database", status="ok", message="", checked_at=now, since=now)
    CheckState.objects.create(name="redis", status="critical", message="down", checked_at=now, since=now)
    Series.objects.create(name="dashboard.clients", last_at=now - timedelta(seconds=12), last_value=7)
    Series.objects.create(name="system.cpu.percent", last_at=now - timedelta(seconds=20), last_value=3)
    rules_evaluate()  # the shipped rules: memory, disk, latency and 5xx have no data; the dead-man's switch is ok


def test_the_portal_state_is_exported(client, portal_state):
    found = samples(scrape(client))

    assert found[("opsportal_alerts_firing", (("severity", "critical"),))] == 2
    assert found[("opsportal_alerts_firing", (("severity", "warning"),))] == 1
    assert found[("opsportal_alerts_firing", (("severity", "info"),))] == 0
    assert found[("opsportal_health_check_status", (("check", "redis"), ("status", "critical")))] == 1
    assert found[("opsportal_health_check_status", (("check", "redis"), ("status", "ok")))] == 0
    assert found[("opsportal_health_check_status", (("check", "database"), ("status", "ok")))] == 1
    assert found[("opsportal_dashboard_clients", ())] == 7
    assert 12 <= found[("opsportal_metrics_collection_lag_seconds", ())] < 20  # the newest series counts
    assert found[("opsportal_metric_rules", (("state", "no_data"),))] == 4
    assert found[("opsportal_metric_rules", (("state", "ok"),))] == 1
    assert found[("opsportal_audit_events_total", ())] == AuditEvent.objects.count() >= 1


def test_each_live_process_exports_its_resident_memory(client, settings):
    settings.MONITORING_INTERVAL_SECONDS = 5
    live, other = Reporter(role="web", pid=101), Reporter(role="worker", pid=202)
    live.report()
    other.report()
    ProcessReport.objects.filter(pid=202).update(at=timezone.now() - timedelta(seconds=16))  # silent for 3 intervals
    rss = ProcessReport.objects.get(pid=101).payload["process"]["rss.bytes"]

    memory = {labels: value for (name, labels), value in samples(scrape(client)).items() if "resident" in name}

    assert memory == {(("pid", "101"), ("role", "web")): rss}
    assert rss > 10 * 1024 * 1024


def test_audit_events_count_every_recorded_event(client, superuser):
    before = samples(scrape(client))[("opsportal_audit_events_total", ())]
    superuser.first_name = "Alice"
    superuser.save()  # an audited change

    assert samples(scrape(client))[("opsportal_audit_events_total", ())] == before + 1


def test_nothing_collected_yet_exports_no_lag_nor_clients(client):
    found = samples(scrape(client))

    assert ("opsportal_metrics_collection_lag_seconds", ()) not in found
    assert ("opsportal_dashboard_clients", ()) not in found


def test_a_family_whose_database_read_fails_is_left_out_and_the_rest_is_served(client, portal_state, log_lines):
    def broken() -> list:
        with connection.cursor() as cursor:  # a real database error, as a missing table gives
            cursor.execute("SELECT count(*) FROM opsportal_no_such_table")
        return []

    collector = FamilyCollector([Family("opsportal_broken_things", "Never served.", broken)])
    REGISTRY.register(collector)
    try:
        text = scrape(client)
    finally:
        REGISTRY.unregister(collector)

    assert "opsportal_broken_things" not in text
    assert samples(text)[("opsportal_alerts_firing", (("severity", "critical"),))] == 2  # read after the failure
    failures = [line for line in log_lines() if line.get("event") == "prometheus_family_failed"]
    assert failures and failures[0]["family"] == "opsportal_broken_things"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is required in CI (Debian's prometheus package)")
        pytest.skip("needs promtool (apt-get install prometheus); required when CI=true")
    return path


def test_the_export_passes_promtool_check_metrics(client, portal_state):
    text = scrape(client)

    checked = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)

    assert checked.returncode == 0, checked.stdout + checked.stderr
