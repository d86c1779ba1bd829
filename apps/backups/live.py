"""What runs now, in the shape of the "backups" topic's progress frames: the topic's snapshot.

A live page subscribes, gets this, then the frames (apps/backups/progress.py).
Progress itself is not stored, so a running operation shows here with its start
and no byte count until its next frame (at most a quarter of a second away).
"""

from datetime import timedelta
from typing import Any

from django.utils import timezone

from apps.backups.models import Backup, Drill, Status

# A drill holds no lease: one still "running" after this long was killed, and its record says so only
# when the next drill of the policy starts.
DRILL_GIVE_UP = timedelta(hours=24)


def running() -> dict[str, Any]:
    now = timezone.now()
    # A backup whose run lease expired was killed: the next run marks it failed.
    backups = Backup.objects.filter(status=Status.RUNNING, policy__lock_expires_at__gt=now).select_related("policy")
    drills = Drill.objects.filter(status=Status.RUNNING, started_at__gt=now - DRILL_GIVE_UP).select_related("policy")
    operations = [_frame("backup", row.policy.name, row.pk, row.started_at, now) for row in backups]
    operations += [_frame("drill", row.policy.name, row.backup_id, row.started_at, now) for row in drills]
    return {"running": sorted(operations, key=lambda frame: frame["started_at"])}


def _frame(operation: str, policy: str, backup_id: int, started_at: Any, now: Any) -> dict[str, Any]:
    return {
        "operation": operation,
        "policy": policy,
        "backup_id": backup_id,
        "phase": None,
        "bytes": 0,
        "total": None,
        "rate": None,
        "elapsed": round((now - started_at).total_seconds(), 1),
        "started_at": started_at.isoformat(),
    }
