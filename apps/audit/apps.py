from celery.signals import task_postrun
from django.apps import AppConfig
from django.core.signals import request_finished
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate


class AuditConfig(AppConfig):
    name = "apps.audit"
    label = "audit"
    verbose_name = "Audit trail"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.models import Group, User

        from apps.audit import capture, checks, receivers, registry, sessions  # noqa: F401 - receivers register on import
        from apps.audit import prometheus as audit_families
        from apps.core import prometheus

        registry.register(
            User,
            repr_field="username",
            redact=("password",),
            ignore=("last_login",),
            password_field="password",  # noqa: S106 - a field name, not a password
        )
        registry.register(Group, repr_field="name")
        registry.register(User.groups.through, repr_field="user")
        registry.register(User.user_permissions.through, repr_field="user")
        registry.register(Group.permissions.through, repr_field="group")
        connection_created.connect(capture.on_connection_created, dispatch_uid="opsportal_audit_connection")
        post_migrate.connect(_install_triggers, dispatch_uid="opsportal_audit_triggers")
        request_finished.connect(capture.seal_pending, dispatch_uid="opsportal_audit_seal_request")
        task_postrun.connect(capture.seal_pending, dispatch_uid="opsportal_audit_seal_task", weak=False)
        prometheus.register(*audit_families.FAMILIES)  # events recorded, on /metrics


def _install_triggers(sender: AppConfig, using: str = "default", **kwargs: object) -> None:
    if sender.label == "audit":  # once per migrate, after every app's tables exist
        from apps.audit import capture

        capture.install_triggers(using)
