"""Metrics on /metrics: dashboard clients, how stale the collected series are, and rule states.

Read from the series rows (one indexed row each), never from the samples: a
scrape every few seconds must cost next to nothing.
"""

from django.db.models import Count, Max
from django.utils import timezone

from apps.core.prometheus import Family, Samples
from apps.metrics.models import MetricRule, Series

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


FAMILIES = (
    Family("opsportal_dashboard_clients", "Live dashboard WebSocket clients, as last collected.", dashboard_clients),
    Family(
        "opsportal_metrics_collection_lag_seconds",
        "Seconds since the newest stored metric sample was taken.",
        collection_lag,
    ),
    Family("opsportal_metric_rules", "Enabled metric alert rules, by state.", rules_by_state, labels=("state",)),
)
