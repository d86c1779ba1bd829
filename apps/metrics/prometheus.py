"""Metrics on /metrics: dashboard clients, how stale the collected series are, rule states, and each live
process's memory.

Read from the series rows (one indexed row each) and the processes' own reports, never from the samples:
a scrape every few seconds must cost next to nothing.
"""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Max
from django.utils import timezone

from apps.core.prometheus import Family, Samples
from apps.metrics.models import MetricRule, ProcessReport, Series
from apps.metrics.reports import CLAIM_ROLE, SILENT_INTERVALS

CLIENTS_SERIES = "dashboard.clients"


def dashboard_clients() -> Samples:
    value = Series.objects.filter(name=CLIENTS_SERIES, last_value__isnull=False).values_list("last_value", flat=True)
    return [((), float(v)) for v in value[:1]]  # no sample until the collector has reported clients


def collection_lag() -> Samples:
    # The newest sample of any series: a dead collector makes this grow (as the dead-man's switch rule).
    newest = Series.objects.aggregate(newest=Max("last_at"))["newest"]
    return [] if newest is None else [((), max((timezone.now() - newest).total_seconds(), 0.0))]


def rules_by_state() -> Samples:
    counts = dict(MetricRule.objects.filter(enabled=True).values_list("state").annotate(n=Count("pk")).order_by())
    return [((state,), float(counts.get(state, 0))) for state in MetricRule.State.values]


def resident_memory() -> Samples:
    """Every live portal process's resident memory, from its last report: whole whichever process is scraped
    (gunicorn's workers, runportal, Celery workers), where a process_* family shows only the answering one."""
    cutoff = timezone.now() - timedelta(seconds=SILENT_INTERVALS * settings.MONITORING_INTERVAL_SECONDS)
    rows = ProcessReport.objects.exclude(role=CLAIM_ROLE).filter(at__gte=cutoff).values_list("role", "pid", "payload")
    return [((role, str(pid)), float(payload["process"]["rss.bytes"])) for role, pid, payload in rows.order_by("key")]


FAMILIES = (
    Family("opsportal_dashboard_clients", "Live dashboard WebSocket clients, as last collected.", dashboard_clients),
    Family(
        "opsportal_metrics_collection_lag_seconds",
        "Seconds since the newest stored metric sample was taken.",
        collection_lag,
    ),
    Family("opsportal_metric_rules", "Enabled metric alert rules, by state.", rules_by_state, labels=("state",)),
    Family(
        "opsportal_process_resident_memory_bytes",
        "Resident memory of each live portal process, as it last reported.",
        resident_memory,
        labels=("role", "pid"),
    ),
)
