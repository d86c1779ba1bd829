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
