"""What runs now and what just finished, in the shape of the "backups" topic's frames: the topic's snapshot.

A live page subscribes, gets this, then the frames (apps/backups/progress.py).
Progress itself is not stored, so a running operation shows here with its start
and no byte count until its next frame (at most a quarter of a second away).
Backups and drills that finished in the last minute are here too, with how they
ended as recorded (a backup's verification, a drill's checks): a small backup
can be over before the page that "Run now" redirects to has subscribed, and the
page asks for this again after each "finished" frame, whose own data does not
say whether the backup verified or how many checks the drill passed.
"""

from datetime import timedelta
from typing import Any

from django.utils import timezone

from apps.backups.models import Backup, Drill, Status, Verification

# A drill holds no lease: one still "running" after this long was killed, and its record says so only
# when the next drill of the policy starts.
DRILL_GIVE_UP = timedelta(hours=24)
RECENT = timedelta(minutes=1)  # as long as the page keeps a finished row (static/opsportal/backups.js)
RECENT_LIMIT = 20


def running() -> dict[str, Any]:
    now = timezone.now()
    # A backup whose run lease expired was killed: the next run marks it failed.
    backups = Backup.objects.filter(status=Status.RUNNING, policy__lock_expires_at__gt=now).select_related("policy")
    drills = Drill.objects.filter(status=Status.RUNNING, started_at__gt=now - DRILL_GIVE_UP).select_related("policy")
    operations = [_frame("backup", row.policy.name, row.pk, row.started_at, now) for row in backups]
    operations += [_frame("drill", row.policy.name, row.backup_id, row.started_at, now) for row in drills]
    finished = []
    for row in _recent(Backup, now):
        if _verifying(row, now):  # written, and its run verifies it now: not over yet
            operations.append({**_frame("backup", row.policy.name, row.pk, row.started_at, now), "phase": "verify"})
        else:
            finished.append({**_ended("backup", row, row.pk, now), "bytes": row.size_bytes,
                             "verification": row.verification, "error": row.error or row.verify_error})  # fmt: skip
    finished += [
        {**_ended("drill", row, row.backup_id, now), "error": row.error,
         "checks_passed": sum(1 for check in row.checks if check.get("ok")), "checks_total": len(row.checks)}
        for row in _recent(Drill, now)
    ]  # fmt: skip
    return {
        "running": sorted(operations, key=lambda frame: frame["started_at"]),
        "finished": sorted(finished, key=lambda frame: frame["finished_at"]),
    }


def _recent(model: type[Backup] | type[Drill], now: Any) -> list:
    rows = model.objects.filter(finished_at__gte=now - RECENT).exclude(status=Status.RUNNING)
    return list(rows.select_related("policy").order_by("-finished_at")[:RECENT_LIMIT])


def _verifying(backup: Backup, now: Any) -> bool:
    policy = backup.policy
    return (
        backup.status == Status.SUCCEEDED
        and backup.verification == Verification.UNVERIFIED
        and policy.verify_after
        and policy.lock_expires_at is not None
        and policy.lock_expires_at > now
    )


def _ended(operation: str, row: Backup | Drill, backup_id: int, now: Any) -> dict[str, Any]:
    frame = _frame(operation, row.policy.name, backup_id, row.started_at, now)
    elapsed = (row.finished_at - row.started_at).total_seconds()
    return {**frame, "elapsed": round(elapsed, 1), "status": row.status, "finished_at": row.finished_at.isoformat()}


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
