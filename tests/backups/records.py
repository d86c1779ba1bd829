"""Backup rows as the scheduler, the metrics and the health check see them, without running a backup."""

import itertools
from datetime import datetime, timedelta

from apps.backups.models import Backup, BackupPolicy, Status, Verification

_numbers = itertools.count(1)


def make_backup(
    policy: BackupPolicy,
    started_at: datetime,
    *,
    status: Status = Status.SUCCEEDED,
    verification: Verification = Verification.OK,
    duration: timedelta = timedelta(seconds=42),
    size_bytes: int = 1000,
    error: str = "",
) -> Backup:
    finished = status != Status.RUNNING
    return Backup.objects.create(
        policy=policy,
        status=status,
        storage=policy.storage,
        location=f"{policy.name}/{started_at:%Y%m%dT%H%M%S%fZ}-{next(_numbers):08x}",
        started_at=started_at,
        finished_at=started_at + duration if finished else None,
        duration=duration if finished else None,
        size_bytes=size_bytes,
        encrypted=policy.encrypted,
        verification=verification,
        error=error,
    )
