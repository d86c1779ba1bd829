"""The run lease: one backup of a policy at a time, and a lock left by a killed run expires by itself.

The lease is two columns on the policy row taken with a conditional UPDATE (atomic in both
PostgreSQL and SQLite, no row lock held while the backup runs). The holder renews it while it
makes progress; a run that lost it (it stalled past the lease and another run took over) stops.
"""

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from apps.backups.errors import BackupBusyError, BackupError
from apps.backups.models import BackupPolicy


class Lease:
    def __init__(self, policy: BackupPolicy, token: str) -> None:
        self.policy, self.token = policy, token

    @classmethod
    def acquire(cls, policy: BackupPolicy) -> "Lease":
        """Take the policy's lease; BackupBusyError while another holder's lease has not expired."""
        now, token = timezone.now(), secrets.token_hex(16)
        free = Q(lock_token="") | Q(lock_expires_at__isnull=True) | Q(lock_expires_at__lt=now)
        taken = BackupPolicy.objects.filter(free, pk=policy.pk).update(lock_token=token, lock_expires_at=_expiry(now))
        if not taken:
            expires = BackupPolicy.objects.filter(pk=policy.pk).values_list("lock_expires_at", flat=True).first()
            raise BackupBusyError(f"a backup of policy {policy} is already running (its lock expires at {expires})")
        return cls(policy, token)

    def renew(self) -> None:
        """Extend the lease; BackupError if another run took it over (this one stalled past its expiry)."""
        now = timezone.now()
        mine = BackupPolicy.objects.filter(pk=self.policy.pk, lock_token=self.token)
        if not mine.update(lock_expires_at=_expiry(now)):
            raise BackupError(f"lost the lock of policy {self.policy}: another run took it over after it expired")

    def release(self) -> None:
        BackupPolicy.objects.filter(pk=self.policy.pk, lock_token=self.token).update(
            lock_token="", lock_expires_at=None
        )


def _expiry(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.BACKUP_LOCK_SECONDS)
