"""The default policy: the portal's own database and media, daily, keep 7 daily / 4 weekly / 6 monthly.

So `manage.py backup run` works in a fresh install. Unencrypted until an operator adds a recipient
(the admin, the health check and `manage.py check` say so). Made by migration 0002 and again after
every migrate or flush that leaves no policy at all (a test database flushed between tests, a
database restored from before backups existed).
"""

from typing import Any

NAME = "default"
FIELDS = {
    "databases": ["default"],
    "include_media": True,
    "schedule": "0 3 * * *",
    "keep_daily": 7,
    "keep_weekly": 4,
    "keep_monthly": 6,
    "compression_level": 2,  # smaller and faster than 3 on the dumps measured in BENCHMARKS.md
}


def create(policy_model: Any, using: str = "default") -> None:
    """Create it when no policy exists; policy_model is the real model or a migration's historical one."""
    policies = policy_model.objects.using(using)
    if not policies.exists():
        policies.create(name=NAME, **FIELDS)


def after_migrate(sender: Any, *, using: str = "default", apps: Any = None, **kwargs: Any) -> None:
    """post_migrate receiver. migrate passes its state's apps (none when backups was migrated to zero);
    flush passes none, so the app's own models are current."""
    try:
        policy_model = apps.get_model("backups", "BackupPolicy") if apps else sender.get_model("BackupPolicy")
    except LookupError:
        return
    create(policy_model, using)
