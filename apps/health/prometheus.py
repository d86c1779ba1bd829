"""Health on /metrics: each check's latest stored status, one 0/1 series per status (a state set)."""

from apps.core.prometheus import Family, Samples
from apps.health.checks.base import Status
from apps.health.models import CheckState


def status_per_check() -> Samples:
    samples = []
    for name, status in CheckState.objects.order_by("name").values_list("name", "status"):
        samples.extend(((name, each), 1.0 if status == each else 0.0) for each in Status.values)
    return samples


FAMILIES = (
    Family(
        "opsportal_health_check_status",
        "1 for the latest stored status of each health check, 0 for the others.",
        status_per_check,
        labels=("check", "status"),
    ),
)
