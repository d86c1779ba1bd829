from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "apps.backups"
    label = "backups"
    verbose_name = "Backups"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from apps.audit import registry
        from apps.backups import default_policy, health_check
        from apps.backups import prometheus as backup_families
        from apps.backups.models import SCHEDULER_FIELDS, BackupPolicy
        from apps.core import health_hooks, prometheus

        # Who changed a policy, not the scheduler's and the lock's bookkeeping.
        registry.register(BackupPolicy, repr_field="name", ignore=SCHEDULER_FIELDS)
        # Per policy on /metrics: the newest success's time, duration, size and verification; running.
        prometheus.register(*backup_families.FAMILIES)
        # A fresh install (and a flushed database) has the default policy, so `backup run` works.
        post_migrate.connect(default_policy.after_migrate, sender=self)
        # Stale, failed or unencrypted policies on the health page; backups fire their own alerts.
        health_hooks.register(
            health_check.NAME, health_check.check, alerts=False, description="Backup policies: fresh, ok, encrypted."
        )
