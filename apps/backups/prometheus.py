"""Backups on /metrics, per policy: the newest successful backup's time, duration, size and verification,
and whether a run holds the policy's lock now.

A policy that never succeeded has no sample in the "last" families (absent
rather than a made-up 0: alert on `absent()` or on the freshness alert).
"""

from django.db.models import OuterRef, Subquery
from django.utils import timezone

from apps.backups.models import Backup, BackupPolicy, Status, Verification
from apps.core.prometheus import Family, Samples

VERIFIED = {Verification.OK: 1.0, Verification.FAILED: 0.0, Verification.UNVERIFIED: -1.0}


def last_successes() -> list[Backup]:
    """The newest succeeded backup of each policy: two queries, each on the (policy, -started_at) index."""
    newest = Backup.objects.filter(policy=OuterRef("pk"), status=Status.SUCCEEDED).order_by("-started_at")
    ids = BackupPolicy.objects.annotate(last=Subquery(newest.values("pk")[:1])).values_list("last", flat=True)
    return list(Backup.objects.filter(pk__in=[pk for pk in ids if pk]).select_related("policy"))


def last_success_timestamp() -> Samples:
    return [((b.policy.name,), (b.finished_at or b.started_at).timestamp()) for b in last_successes()]


def last_duration() -> Samples:
    return [((b.policy.name,), b.duration.total_seconds()) for b in last_successes() if b.duration is not None]


def last_size() -> Samples:
    return [((b.policy.name,), float(b.size_bytes)) for b in last_successes()]


def last_verified() -> Samples:
    return [((b.policy.name,), VERIFIED[b.verification]) for b in last_successes()]


def running() -> Samples:
    now = timezone.now()
    return [
        ((name,), float(bool(token) and expires is not None and expires > now))
        for name, token, expires in BackupPolicy.objects.values_list("name", "lock_token", "lock_expires_at")
    ]


FAMILIES = (
    Family(
        "opsportal_backup_last_success_timestamp_seconds",
        "When the newest successful backup of the policy finished (Unix time).",
        last_success_timestamp,
        labels=("policy",),
    ),
    Family(
        "opsportal_backup_last_duration_seconds",
        "How long the newest successful backup of the policy took.",
        last_duration,
        labels=("policy",),
    ),
    Family(
        "opsportal_backup_last_size_bytes",
        "Stored size of the newest successful backup of the policy (all its artifacts).",
        last_size,
        labels=("policy",),
    ),
    Family(
        "opsportal_backup_last_verified",
        "Verification of the newest successful backup: 1 verified, 0 failed, -1 not verified yet.",
        last_verified,
        labels=("policy",),
    ),
    Family(
        "opsportal_backup_running",
        "1 while a backup of the policy holds its lock, else 0.",
        running,
        labels=("policy",),
    ),
)
