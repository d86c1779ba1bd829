"""Is a policy's newest verified backup recent enough? The alert no anchor tool has, and the health check's input.

A policy is stale when its newest verified backup started longer ago than its
freshness limit (max_age, or twice its schedule's period). The age counts from
the start of the backup: that is the moment its data is from. A policy with no
verified backup yet is stale once it has existed for longer than the limit, so
a new policy is not reported before it could have run. A policy that does not
verify after writing (verify_after off) counts its succeeded backups whose
verification did not fail.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from django.core.exceptions import ValidationError
from django.utils.timesince import timesince

from apps.alerts.services import alert_fire, alert_resolve
from apps.backups.models import Backup, BackupPolicy, Status, Verification

logger = structlog.get_logger(__name__)

ALERT_SOURCE = "backups"


@dataclass(frozen=True)
class Freshness:
    policy: str
    limit: timedelta
    newest_at: datetime | None  # start of the newest verified backup
    age: timedelta  # of the newest verified backup, or of the policy when it has none

    @property
    def stale(self) -> bool:
        return self.age > self.limit

    @property
    def message(self) -> str:
        if self.newest_at is None:
            return f"no verified backup of {self.policy} yet (limit {_human(self.limit)})"
        return f"the newest verified backup of {self.policy} is {_human(self.age)} old (limit {_human(self.limit)})"


def newest_verified(policy: BackupPolicy) -> Backup | None:
    backups = policy.backups.filter(status=Status.SUCCEEDED, pruned_at__isnull=True)
    if policy.verify_after:
        backups = backups.filter(verification=Verification.OK)
    else:
        backups = backups.exclude(verification=Verification.FAILED)
    return backups.order_by("-started_at").first()


def freshness(policy: BackupPolicy, now: datetime) -> Freshness:
    """Raises ValidationError when the policy's schedule is not valid (and it has no max_age)."""
    limit = policy.freshness_limit()
    newest = newest_verified(policy)
    newest_at = newest.started_at if newest is not None else None
    return Freshness(policy.name, limit, newest_at, now - (newest_at or policy.created_at))


def alert_key(policy: BackupPolicy | str) -> str:
    return f"{policy}:freshness"


def evaluate(now: datetime) -> dict[str, bool]:
    """Fire the freshness alert of each stale enabled policy, resolve the others'; returns {policy: stale}."""
    found = {}
    for policy in BackupPolicy.objects.all():
        try:
            state = freshness(policy, now) if policy.enabled else None
        except ValidationError as error:  # saved around the admin's validation: the tick goes on for the others
            logger.warning("backup_schedule_invalid", policy=policy.name, error=error.messages[0])
            continue
        if state is not None and state.stale:
            alert_fire(
                source=ALERT_SOURCE,
                key=alert_key(policy),
                severity="warning",
                summary=f"Backups of {policy} are stale",
                description=state.message,
                labels={"policy": policy.name},
            )
        else:
            alert_resolve(source=ALERT_SOURCE, key=alert_key(policy))
        found[policy.name] = bool(state and state.stale)
    return found


def _human(delta: timedelta) -> str:
    """ "2 days, 1 hour": Django's timesince, with plain spaces (it is sent in alerts, by mail and chat)."""
    now = datetime.now(UTC)
    return timesince(now - delta, now).replace("\xa0", " ")
