"""The scheduler's side of backups: a tick that claims what is due, and the tasks that run it.

backups_tick runs every BACKUP_TICK_SECONDS (beat, or the embedded scheduler).
For each enabled policy and each of its schedules (run, verify, drill) it claims
a due time with a conditional UPDATE of next_*_at from the value it read to the
next fire time: of two ticks that read the same row (a beat delivered twice,
two schedulers), only one UPDATE touches the row, so the work is queued once.
The task is queued after that commit. A time in the past (the portal was down
at 03:00) runs once, at once, then the schedule resumes. A next time that is
no longer the schedule's next fire time (an operator changed the schedule) is
replaced by the new schedule's, without running. Then it fires or resolves
each policy's freshness alert.

The tasks fetch their policy by id and call the services; a policy whose lock
is held (a run in progress) is skipped, not an error.
"""

from collections.abc import Callable
from datetime import datetime

import structlog
from celery import shared_task
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.backups import drill, freshness, schedule, services
from apps.backups.errors import BackupBusyError, BackupError
from apps.backups.models import BackupPolicy, Status, Trigger

logger = structlog.get_logger(__name__)

BACKUP_TIME_LIMIT = 6 * 3600  # seconds: a large database over a slow link; the lease covers a killed worker


@shared_task(ignore_result=True, soft_time_limit=120, time_limit=180)
def backups_tick() -> dict:
    """Every BACKUP_TICK_SECONDS: queue what is due, fail killed runs, fire or resolve freshness alerts."""
    now = timezone.now()
    queued: dict[str, list[str]] = {"run": [], "verify": [], "drill": []}
    for policy in BackupPolicy.objects.filter(enabled=True):
        for job, (field, expr, queue) in _jobs(policy).items():
            if _claim(policy, field, expr, now, lambda queue=queue, pk=policy.pk: queue(pk)):
                queued[job].append(policy.name)
    interrupted = [policy.name for policy in _with_running_backups() if services.fail_interrupted(policy)]
    stale = [name for name, is_stale in freshness.evaluate(now).items() if is_stale]
    if any(queued.values()) or interrupted:
        logger.info("backups_tick", **queued, interrupted=interrupted, stale=stale)
    return {**queued, "interrupted": interrupted, "stale": stale}


def _with_running_backups() -> list[BackupPolicy]:
    """Policies (enabled or not) with a RUNNING record: a killed run's is failed once its lock expired."""
    return list(BackupPolicy.objects.filter(backups__status=Status.RUNNING).distinct())


def _jobs(policy: BackupPolicy) -> dict[str, tuple[str, str, Callable[[int], object]]]:
    return {
        "run": ("next_run_at", policy.schedule, lambda pk: backup_run_task.delay(pk, Trigger.SCHEDULE)),
        "verify": ("next_verify_at", policy.verify_schedule, backup_verify_task.delay),
        "drill": ("next_drill_at", policy.drill_schedule, backup_drill_task.delay),
    }


def _claim(policy: BackupPolicy, field: str, expr: str, now: datetime, queue: Callable[[], object]) -> bool:
    """Move policy.<field> on with a conditional UPDATE; True when it was due and this tick queued its task."""
    planned = getattr(policy, field)
    try:
        upcoming = schedule.next_after(expr, now) if expr.strip() else None
    except ValidationError as error:  # saved around the admin's validation: the others still run
        logger.warning("backup_schedule_invalid", policy=policy.name, schedule=field, error=error.messages[0])
        return False
    if planned == upcoming:
        return False  # waiting for its time
    due = planned is not None and planned <= now and upcoming is not None
    with transaction.atomic():
        claimed = BackupPolicy.objects.filter(pk=policy.pk, **{field: planned}).update(**{field: upcoming})
        if claimed and due:
            transaction.on_commit(lambda: _queue(queue, policy, field), robust=True)
    return bool(claimed and due)


def _queue(queue: Callable[[], object], policy: BackupPolicy, field: str) -> None:
    try:
        queue()
    except Exception:  # the broker is down: this time is lost, and the freshness alert will say so
        logger.warning("backup_dispatch_failed", policy=policy.name, schedule=field, exc_info=True)


@shared_task(ignore_result=True, soft_time_limit=BACKUP_TIME_LIMIT, time_limit=BACKUP_TIME_LIMIT + 300)
def backup_run_task(policy_id: int, trigger: str = Trigger.SCHEDULE, actor_id: int | None = None) -> dict:
    """Back up the policy (services.backup_run: verify, retention, alerts); skipped while another run holds it."""
    policy = _policy(policy_id)
    if policy is None:
        return {"skipped": "no such policy"}
    try:
        backup = services.backup_run(policy, trigger=Trigger(trigger), actor=_actor(actor_id))
    except BackupBusyError as error:
        logger.info("backup_skipped_busy", policy=policy.name, reason=str(error))
        return {"skipped": "busy"}
    except BackupError as error:  # recorded on the backup and alerted by backup_run
        return {"policy": policy.name, "status": "failed", "error": str(error)}
    return {"policy": policy.name, "backup": backup.pk, "status": backup.status}


@shared_task(ignore_result=True, soft_time_limit=BACKUP_TIME_LIMIT, time_limit=BACKUP_TIME_LIMIT + 300)
def backup_verify_task(policy_id: int) -> dict:
    """Re-read the policy's rotating sample of stored artifacts (services.verify_policy_sample alerts on failure)."""
    policy = _policy(policy_id)
    if policy is None:
        return {"skipped": "no such policy"}
    result = services.verify_policy_sample(policy, percent=policy.verify_sample_percent)
    return {"policy": policy.name, "ok": result.ok, "checked": result.checked, "errors": result.errors}


@shared_task(ignore_result=True, soft_time_limit=BACKUP_TIME_LIMIT, time_limit=BACKUP_TIME_LIMIT + 300)
def backup_drill_task(policy_id: int, trigger: str = Trigger.SCHEDULE, actor_id: int | None = None) -> dict:
    """Restore the policy's newest verified backup into scratch databases and check it (drill.drill alerts)."""
    policy = _policy(policy_id)
    if policy is None:
        return {"skipped": "no such policy"}
    try:
        done = drill.drill(policy=policy, actor=_actor(actor_id), trigger=Trigger(trigger))
    except BackupBusyError as error:
        logger.info("backup_drill_skipped_busy", policy=policy.name, reason=str(error))
        return {"skipped": "busy"}
    except BackupError as error:  # nothing to drill (no verified backup yet): the freshness alert covers it
        logger.warning("backup_drill_not_run", policy=policy.name, reason=str(error))
        return {"policy": policy.name, "status": "not run", "error": str(error)}
    return {"policy": policy.name, "drill": done.pk, "status": done.status}


def _policy(policy_id: int) -> BackupPolicy | None:
    policy = BackupPolicy.objects.filter(pk=policy_id).first()
    if policy is None:  # deleted since it was queued
        logger.info("backup_policy_gone", policy_id=policy_id)
    return policy


def _actor(actor_id: int | None) -> AbstractBaseUser | None:
    return get_user_model().objects.filter(pk=actor_id).first() if actor_id is not None else None
