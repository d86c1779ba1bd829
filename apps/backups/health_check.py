"""The "backups" health check, offered to the health app through apps.core.health_hooks (a sibling app).

critical when a policy's newest backup failed (or failed its verification);
warning when an enabled policy is stale or writes unencrypted backups (the issue
wants "encryption is off" said as a warning). It is registered with alerts=False:
backups fire their own alerts (failure, verify, freshness) with better keys, and a
health alert on top would tell the same people the same thing twice.
"""

from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.backups.freshness import freshness
from apps.backups.models import Backup, BackupPolicy, Status, Verification

NAME = "backups"


def check() -> tuple[str, str, dict[str, Any]]:
    now = timezone.now()
    critical, warning, details = [], [], {}
    for policy in BackupPolicy.objects.filter(enabled=True):
        newest = policy.backups.exclude(status=Status.RUNNING).order_by("-started_at").first()
        state: dict[str, Any] = {"encrypted": policy.encrypted, "last_status": newest.status if newest else None}
        if newest is not None and (newest.status == Status.FAILED or newest.verification == Verification.FAILED):
            critical.append(f"{policy}: the newest backup failed ({_why(newest)})")
        try:
            fresh = freshness(policy, now)
        except ValidationError as error:
            warning.append(f"{policy}: {error.messages[0]}")
        else:
            state.update(stale=fresh.stale, newest_verified_at=fresh.newest_at and fresh.newest_at.isoformat())
            if fresh.stale:
                warning.append(f"{policy}: {fresh.message}")
        if not policy.encrypted:
            warning.append(f"{policy}: encryption is off (no recipients)")
        details[policy.name] = state
    if critical or warning:
        return ("critical" if critical else "warning"), "; ".join(critical + warning), details
    return "ok", f"{len(details)} enabled policies: encrypted, newest backups verified and fresh", details


def _why(backup: Backup) -> str:
    reason = backup.error if backup.status == Status.FAILED else f"verification: {backup.verify_error}"
    return " ".join(reason.split())[:200] or "no reason recorded"
