from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "apps.backups"
    label = "backups"
    verbose_name = "Backups"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.audit import registry
        from apps.backups.models import SCHEDULER_FIELDS, BackupPolicy

        # Who changed a policy, not the scheduler's and the lock's bookkeeping.
        registry.register(BackupPolicy, repr_field="name", ignore=SCHEDULER_FIELDS)
