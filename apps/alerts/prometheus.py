"""The alerts on /metrics: how many are firing, by severity (every severity, 0 included, so series never vanish)."""

from django.db.models import Count

from apps.alerts.models import Alert, Severity, State
from apps.core.prometheus import Family, Samples


def firing_by_severity() -> Samples:
    counts = dict(Alert.objects.filter(state=State.FIRING).values_list("severity").annotate(n=Count("pk")).order_by())
    return [((severity,), float(counts.get(severity, 0))) for severity in Severity.values]


FAMILIES = (
    Family(
        "opsportal_alerts_firing",
        "Alerts firing (not acknowledged, not resolved), by severity.",
        firing_by_severity,
        labels=("severity",),
    ),
)
