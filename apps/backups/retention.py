"""Which backups to keep: grandfather-father-son retention as `restic forget` does it, and pruning the rest.

plan() is pure (no database, no clock): the property tests run it over random
timelines. Rules, as in restic: keep-last N keeps the N newest; each of hourly,
daily, weekly (ISO week), monthly and yearly keeps the newest backup of each of
its N most recent buckets that hold a backup, buckets read in TIME_ZONE (a
"daily" backup is one per local calendar day). The newest verified backup is
always kept, whatever the rules say. A policy with no rule at all keeps
everything (restic refuses to forget without a policy, for the same reason:
an empty policy is a mistake, not a request to delete every backup).

prune() applies the plan to a policy's stored backups through services.delete,
which removes the files and marks the row pruned (the row stays as history).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

import structlog
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from apps.audit.services import record
from apps.backups.models import Backup, BackupPolicy, Status, Verification

logger = structlog.get_logger(__name__)

NEWEST_VERIFIED = "newest verified"
NO_RULE = "no retention rule"


@dataclass(frozen=True)
class Snapshot:
    id: int
    started_at: datetime  # aware
    verified: bool


@dataclass(frozen=True)
class Rules:
    """How many to keep by each rule (the policy's keep_* fields)."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    @classmethod
    def of(cls, policy: BackupPolicy) -> "Rules":
        return cls(
            last=policy.keep_last,
            hourly=policy.keep_hourly,
            daily=policy.keep_daily,
            weekly=policy.keep_weekly,
            monthly=policy.keep_monthly,
            yearly=policy.keep_yearly,
        )

    def any(self) -> bool:
        return any((self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly))


@dataclass(frozen=True)
class Plan:
    keep: dict[int, list[str]]  # id -> why, newest first
    delete: list[int]  # newest first


# The bucket a local time falls in, per rule; the label is also the reason shown ("daily 2026-11-30").
BUCKETS: dict[str, Callable[[datetime], str]] = {
    "hourly": lambda t: t.strftime("%Y-%m-%d %H:00"),
    "daily": lambda t: t.strftime("%Y-%m-%d"),
    "weekly": lambda t: "{}-W{:02d}".format(*t.isocalendar()[:2]),
    "monthly": lambda t: t.strftime("%Y-%m"),
    "yearly": lambda t: t.strftime("%Y"),
}


def plan(backups: Iterable[Snapshot], rules: Rules, tz: tzinfo | None = None) -> Plan:
    """Which backups the rules keep (and why) and which they delete; tz: TIME_ZONE unless given."""
    tz = tz or timezone.get_default_timezone()
    newest_first = sorted(backups, key=lambda s: (s.started_at, s.id), reverse=True)
    keep: dict[int, list[str]] = {s.id: [] for s in newest_first}
    if not rules.any():
        for reasons in keep.values():
            reasons.append(NO_RULE)
    for n, snapshot in enumerate(newest_first[: rules.last], start=1):
        keep[snapshot.id].append(f"last {n}/{rules.last}")
    for rule, bucket_of in BUCKETS.items():
        _keep_buckets(newest_first, getattr(rules, rule), rule, bucket_of, tz, keep)
    verified = next((s for s in newest_first if s.verified), None)
    if verified is not None:
        keep[verified.id].append(NEWEST_VERIFIED)
    return Plan(
        keep={s.id: keep[s.id] for s in newest_first if keep[s.id]},
        delete=[s.id for s in newest_first if not keep[s.id]],
    )


def _keep_buckets(
    newest_first: list[Snapshot],
    count: int,
    rule: str,
    bucket_of: Callable[[datetime], str],
    tz: tzinfo,
    keep: dict[int, list[str]],
) -> None:
    """The newest backup of each of the `count` most recent buckets that hold one."""
    seen: set[str] = set()
    for snapshot in newest_first:
        if len(seen) == count:
            return
        bucket = bucket_of(snapshot.started_at.astimezone(tz))
        if bucket not in seen:
            seen.add(bucket)
            keep[snapshot.id].append(f"{rule} {bucket}")


# ---------------------------------------------------------------- applying it


@dataclass(frozen=True)
class Entry:
    id: int
    location: str
    started_at: datetime
    status: str
    reasons: list[str]  # why it is kept, or why it is deleted

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "location": self.location,
            "started_at": self.started_at.isoformat(),
            "status": self.status,
            "reasons": self.reasons,
        }

    def line(self, verb: str) -> str:
        when = timezone.localtime(self.started_at).strftime("%Y-%m-%d %H:%M")
        return f"{verb:<6} #{self.id:<6} {when}  {self.location}  ({', '.join(self.reasons)})"


@dataclass
class PruneResult:
    policy: str
    dry_run: bool
    keep: list[Entry]
    delete: list[Entry]
    errors: dict[int, str] = field(default_factory=dict)  # backup id -> why its deletion failed

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "dry_run": self.dry_run,
            "keep": [entry.as_dict() for entry in self.keep],
            "delete": [entry.as_dict() for entry in self.delete],
            "errors": {str(pk): error for pk, error in self.errors.items()},
        }

    def lines(self) -> list[str]:
        """What the `backup prune` command prints: a summary, then a line per backup with its reasons."""
        if self.dry_run:
            head = f"policy {self.policy}: keep {len(self.keep)}, would delete {len(self.delete)} (dry run)"
        else:
            head = f"policy {self.policy}: kept {len(self.keep)}, deleted {len(self.delete) - len(self.errors)}"
            head += f", {len(self.errors)} failed" if self.errors else ""
        lines = [head] + [entry.line("keep") for entry in self.keep]
        lines += [entry.line("delete") for entry in self.delete]
        lines += [f"error  #{pk}: {error}" for pk, error in self.errors.items()]
        return lines


def prune(policy: BackupPolicy, *, dry_run: bool, actor: AbstractBaseUser | None = None) -> PruneResult:
    """Apply the policy's retention to its stored backups; with dry_run, only say what would go and why.

    Succeeded backups not yet pruned are planned; failed ones older than the
    oldest kept backup go too (their partial files, if a storage holds any).
    Running backups are never touched. Each deletion is services.delete (files,
    then the row marked pruned, audited "backup.delete"); one that fails is
    reported in the result and the others go on. The prune itself is audited
    "backup.prune" unless it was a dry run.
    """
    from apps.backups import services  # a cycle inside the app: services.backup_run calls prune()

    stored = {
        backup.pk: backup for backup in policy.backups.filter(pruned_at__isnull=True).exclude(status=Status.RUNNING)
    }
    result = _result(policy, stored, dry_run=dry_run)
    if not dry_run:
        for entry in result.delete:
            try:
                services.delete(stored[entry.id], actor=actor)
            except Exception as error:  # a storage error on one backup must not keep the others
                logger.warning("backup_prune_delete_failed", policy=policy.name, backup=entry.id, exc_info=True)
                result.errors[entry.id] = str(error) or type(error).__name__
        with transaction.atomic():
            record("backup.prune", resource=policy, details=_audit_details(result), actor=actor)
    logger.info("backup_prune", policy=policy.name, dry_run=dry_run, kept=len(result.keep), deleted=len(result.delete))
    return result


def _result(policy: BackupPolicy, stored: dict[int, Backup], *, dry_run: bool) -> PruneResult:
    decided = plan(
        [
            Snapshot(backup.pk, backup.started_at, backup.verification == Verification.OK)
            for backup in stored.values()
            if backup.status == Status.SUCCEEDED
        ],
        Rules.of(policy),
    )
    keep = [_entry(stored[pk], reasons) for pk, reasons in decided.keep.items()]
    delete = [_entry(stored[pk], ["no rule keeps it"]) for pk in decided.delete]
    if keep:
        oldest_kept = min(entry.started_at for entry in keep)
        delete += [
            _entry(backup, ["failed, older than the oldest kept backup"])
            for backup in stored.values()
            if backup.status == Status.FAILED and backup.started_at < oldest_kept
        ]
    delete.sort(key=lambda entry: entry.started_at, reverse=True)
    return PruneResult(policy=policy.name, dry_run=dry_run, keep=keep, delete=delete)


def _entry(backup: Backup, reasons: list[str]) -> Entry:
    return Entry(backup.pk, backup.location, backup.started_at, backup.status, reasons)


def _audit_details(result: PruneResult) -> dict[str, Any]:
    return {
        "kept": {str(entry.id): entry.reasons for entry in result.keep},
        "deleted": [entry.id for entry in result.delete if entry.id not in result.errors],
        "failed": {str(pk): error for pk, error in result.errors.items()},
    }
