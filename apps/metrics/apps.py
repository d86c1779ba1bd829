from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "apps.metrics"
    label = "metrics"
    verbose_name = "Metrics"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Series and sample admin; Celery task counting (signal connections only: no thread starts here).
        from apps.metrics import series_admin, workers  # noqa: F401

        workers.connect()
        self._ready_rules()

    def _ready_rules(self) -> None:
        """Metric alert rules: audited edits, and the portal's metric state on /metrics."""
        from apps.audit import registry
        from apps.core import prometheus
        from apps.metrics import prometheus as metric_families
        from apps.metrics import rule_tasks  # noqa: F401 - registers the beat's task (autodiscovery reads tasks.py only)
        from apps.metrics.models import MetricRule
        from apps.metrics.rules import STATE_FIELDS

        # Who changed a rule, not each evaluation's state (written every tick by the scheduler).
        registry.register(MetricRule, repr_field="name", ignore=tuple(STATE_FIELDS))
        prometheus.register(*metric_families.FAMILIES)
