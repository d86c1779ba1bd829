"""Database checks (run by `manage.py check --database default`): are the backups encrypted?"""

from typing import Any

from django.core.checks import CheckMessage, Tags, Warning, register
from django.db import DatabaseError

from apps.backups.models import BackupPolicy


@register(Tags.database)
def backups_encrypted(app_configs: Any, databases: list[str] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """backups.W001: an enabled policy without recipients stores its backups readable by whoever reads the storage."""
    if "default" not in (databases or []):
        return []
    try:
        names = [policy.name for policy in BackupPolicy.objects.filter(enabled=True) if not policy.encrypted]
    except DatabaseError:  # not migrated yet: migrate says so
        return []
    if not names:
        return []
    return [
        Warning(
            f"Backups are not encrypted: {', '.join(names)} (enabled, no age recipient).",
            hint="Make a key pair with `manage.py backup keygen`, keep the identity offline, and paste the "
            "recipient (age1...) into the policy's recipients in the admin.",
            id="backups.W001",
        )
    ]
