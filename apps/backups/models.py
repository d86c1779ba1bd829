"""Backup policies (what, when, how long to keep), the backups they made, and restore drills."""

from datetime import timedelta

from django.conf import settings
from django.db import models


class Status(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Verification(models.TextChoices):
    UNVERIFIED = "unverified"
    OK = "ok"
    FAILED = "failed"


class Trigger(models.TextChoices):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    PRE_RESTORE = "pre-restore", "before a restore"


def default_databases() -> list[str]:
    return ["default"]


# Written by the scheduler and the run lock, not by people: not audited as policy changes.
SCHEDULER_FIELDS = (
    "next_run_at",
    "next_verify_at",
    "next_drill_at",
    "lock_token",
    "lock_expires_at",
    "verify_cursor",
    "updated_at",
)


class BackupPolicy(models.Model):
    name = models.SlugField(max_length=64, unique=True, help_text="Also names the storage folder and the alerts.")
    enabled = models.BooleanField(default=True, help_text="Disabled policies are not run by the schedule.")
    databases = models.JSONField(
        default=default_databases, blank=True, help_text="Database aliases (settings.DATABASES) to dump."
    )
    include_media = models.BooleanField(default=True, help_text="Archive MEDIA_ROOT.")
    paths = models.JSONField(default=list, blank=True, help_text="More absolute paths (files or folders) to archive.")
    schedule = models.CharField(
        max_length=100, default="0 3 * * *", help_text="Cron expression in the portal's time zone."
    )
    compression_level = models.PositiveSmallIntegerField(default=2, help_text="zstd level, 1 (fastest) to 19.")
    recipients = models.TextField(
        blank=True, help_text="age recipients (age1...), one per line. Empty: backups are NOT encrypted."
    )
    storage = models.CharField(max_length=32, default="local", help_text="A storage named in BACKUP_STORAGES.")
    keep_last = models.PositiveIntegerField(default=0)
    keep_hourly = models.PositiveIntegerField(default=0)
    keep_daily = models.PositiveIntegerField(default=7)
    keep_weekly = models.PositiveIntegerField(default=4)
    keep_monthly = models.PositiveIntegerField(default=6)
    keep_yearly = models.PositiveIntegerField(default=0)
    verify_after = models.BooleanField(default=True, help_text="Re-read every artifact after writing it.")
    verify_schedule = models.CharField(
        max_length=100, blank=True, default="30 4 * * 0", help_text="Cron: re-read a sample of stored backups."
    )
    verify_sample_percent = models.PositiveSmallIntegerField(
        default=10, help_text="Share of artifacts each scheduled verify reads (rotating)."
    )
    drill_schedule = models.CharField(
        max_length=100, blank=True, default="0 5 * * 0", help_text="Cron: restore drill. Empty: no scheduled drill."
    )
    max_age = models.DurationField(
        null=True, blank=True, help_text="Alert when the newest verified backup is older. Empty: twice the period."
    )
    next_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    next_verify_at = models.DateTimeField(null=True, blank=True, editable=False)
    next_drill_at = models.DateTimeField(null=True, blank=True, editable=False)
    lock_token = models.CharField(max_length=32, blank=True, editable=False)
    lock_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    verify_cursor = models.CharField(max_length=200, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "backup policies"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def encrypted(self) -> bool:
        return bool(self.recipient_list())

    def recipient_list(self) -> list[str]:
        return [line.strip() for line in self.recipients.splitlines() if line.strip()]

    def period(self) -> timedelta:
        from apps.backups import schedule

        return schedule.period(self.schedule)

    def freshness_limit(self) -> timedelta:
        return self.max_age if self.max_age is not None else 2 * self.period()


class Backup(models.Model):
    policy = models.ForeignKey(BackupPolicy, on_delete=models.PROTECT, related_name="backups")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    storage = models.CharField(max_length=32)
    location = models.CharField(max_length=255, unique=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration = models.DurationField(null=True, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    encrypted = models.BooleanField(default=False)
    manifest = models.JSONField(default=dict, blank=True)
    manifest_sha256 = models.CharField(max_length=64, blank=True)
    verification = models.CharField(max_length=16, choices=Verification.choices, default=Verification.UNVERIFIED)
    verified_at = models.DateTimeField(null=True, blank=True)
    verify_error = models.TextField(blank=True)
    error = models.TextField(blank=True)
    pruned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["policy", "-started_at"], name="backup_policy_started")]
        permissions = [("download_backup", "Can download backup files")]

    def __str__(self) -> str:
        return self.location


class Drill(models.Model):
    """A restore drill: the newest backup restored into scratch databases and checked against its manifest."""

    backup = models.ForeignKey(Backup, on_delete=models.CASCADE, related_name="drills")
    policy = models.ForeignKey(BackupPolicy, on_delete=models.PROTECT, related_name="drills")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration = models.DurationField(null=True, blank=True)
    checks = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"drill of {self.backup}"
