from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "apps.health"
    label = "health"
    verbose_name = "Health"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.audit import registry
        from apps.core import prometheus
        from apps.health import prometheus as health_families
        from apps.health import system_checks  # noqa: F401 - registers on import
        from apps.health.checks import dependencies, hooked, system, targets  # noqa: F401 - register the checks
        from apps.health.models import HealthTarget

        # Who added, changed or removed a watched endpoint (results are records, not audited).
        registry.register(HealthTarget, repr_field="name", redact=("url",))  # a query string may hold a token
        prometheus.register(*health_families.FAMILIES)  # each check's status on /metrics
