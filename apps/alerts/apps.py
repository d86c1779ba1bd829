from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class AlertsConfig(AppConfig):
    name = "apps.alerts"
    label = "alerts"
    verbose_name = "Alerts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.alerts import checks, revision, routing  # noqa: F401 - checks register on import
        from apps.alerts import prometheus as alert_families
        from apps.alerts.models import Alert, EscalationPolicy, EscalationStep, NotificationChannel, Route, Silence
        from apps.audit import registry
        from apps.core import prometheus

        # Who changed where notifications go, and who silenced what. (Alerts themselves
        # are not: their timeline records every transition, and acknowledgements and
        # manual resolves are recorded as alert.ack / alert.resolve.)
        registry.register(NotificationChannel, repr_field="name", redact=("secret", "headers", "url"))
        registry.register(Route, repr_field="name")
        registry.register(EscalationPolicy, repr_field="name")
        registry.register(EscalationStep, repr_field="policy")
        registry.register(EscalationStep.channels.through, repr_field="escalationstep")
        registry.register(Silence, repr_field="comment")
        post_save.connect(_silence_saved, sender=Silence, dispatch_uid="opsportal_alerts_silence_saved")
        # Producers hold routes and silences in memory and reload them when this stamp moves on.
        for model in (Route, Silence):
            for signal in (post_save, post_delete):
                signal.connect(routing.changed, sender=model, dispatch_uid=f"opsportal_alerts_{model.__name__}_stamp")
        # Whoever reuses what it read of the alerts reads them again after any change (revision.py).
        for name, signal, model in (
            ("save", post_save, Alert),
            ("delete", post_delete, Alert),
            ("unsilence", post_delete, Silence),
        ):
            signal.connect(revision.EPOCH.move_on_commit, sender=model, dispatch_uid=f"opsportal_alerts_{name}_epoch")
        # Alerts firing, by severity, on /metrics.
        prometheus.register(*alert_families.FAMILIES)


def _silence_saved(sender: type, instance: object, raw: bool = False, **kwargs: object) -> None:
    if not raw:  # not while loading fixtures
        from apps.alerts import services

        services.silence_applied(instance)
