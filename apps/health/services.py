"""The health app's service functions: run the checks, store what they found, fire and resolve alerts.

run_checks() runs now and stores nothing (the `health` command, /health/?fresh=1);
run_and_store() is the scheduled run (history, latest state, alerts, broadcast);
latest() and overall() serve /health/ and the overview from stored state;
readiness() answers /readyz.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.alerts.services import alert_fire, alert_resolve
from apps.core.broadcast import broadcast_on_commit
from apps.health import probes, runner
from apps.health.checks.base import Check, Result, Status, UnknownCheckError, registry, worst
from apps.health.models import TARGET_PREFIX, CheckResult, CheckState, HealthTarget

logger = structlog.get_logger(__name__)

ALERT_SOURCE = "health"
TOPIC = "health"
PRUNE_BATCH = 5000

__all__ = [
    "ALERT_SOURCE",
    "TOPIC",
    "UnknownCheckError",
    "check_names",
    "history",
    "latest",
    "overall",
    "prune",
    "readiness",
    "run_and_store",
    "run_checks",
]


def check_names() -> list[str]:
    """The name of every check there is now (built-in, per database alias, per enabled target)."""
    return [check.name for check in registry.checks()]


def run_checks(names: Iterable[str] | None = None, *, timeout: float | None = None) -> list[Result]:
    """Run the named checks (all when None) now, concurrently, and return their results; nothing is stored.

    Each check is bounded by its own timeout (HEALTH_CHECK_TIMEOUT_SECONDS unless
    it sets one), or by `timeout` when given: one that has not answered by then is
    critical "timed out after N s", and the call returns anyway, so it takes about
    the longest timeout at most. Raises UnknownCheckError (a ValueError whose
    message lists the known names) for a name no check has.
    """
    return runner.run(registry.select(names), timeout=timeout)


def run_and_store(*, timeout: float | None = None) -> list[Result]:
    """The scheduled run: run the checks that are due, store them, alert, broadcast; returns what ran.

    A check with an interval (a target) runs when its last result is at least
    that old. Each result is added to the history and becomes its check's latest
    state. A check that has been at or above its alert level (critical, or
    warning for checks that say so) for longer than its `for` duration fires
    alert_fire(source="health", key=<check>); recovering resolves it; going bad
    and back within `for` fires nothing. The latest states of what ran are
    broadcast on topic "health" after the commit. State of checks that no longer
    exist (a deleted or disabled target) is removed and their alerts resolved.
    """
    checks = registry.checks()
    states = {state.name: state for state in CheckState.objects.all()}
    due = [check for check in checks if _due(check, states.get(check.name), timezone.now())]
    results = runner.run(due, timeout=timeout)  # outside any transaction: checks do network I/O
    now = timezone.now()
    by_name = {check.name: check for check in checks}
    with transaction.atomic():
        CheckResult.objects.bulk_create(
            CheckResult(
                name=r.name,
                status=r.status,
                message=r.message,
                details=r.details,
                latency_ms=r.latency_ms,
                checked_at=r.checked_at,
            )
            for r in results
        )
        changed = [_record(by_name[result.name], result, now) for result in results]
        _forget(set(by_name))
        broadcast_on_commit(
            TOPIC,
            "results",
            {
                "overall": str(overall(CheckState.objects.values_list("status", flat=True))),
                "checks": [state.as_dict() for state in changed],
            },
        )
    logger.info(
        "health_run",
        checks=len(results),
        overall=str(overall(result.status for result in results)),
        bad=[result.name for result in results if result.status != Status.OK],
    )
    return results


def latest() -> list[CheckState]:
    """The latest stored state of every check that has run, by name: one query."""
    return list(CheckState.objects.order_by("name"))


def history(name: str, *, limit: int = 200) -> list[CheckResult]:
    """The most recent results of one check, newest first."""
    return list(CheckResult.objects.filter(name=name).order_by("-checked_at")[:limit])


def overall(statuses: Iterable[Status | str]) -> Status:
    """The worst status (ok < unknown < warning < critical); unknown when there is none."""
    return worst(statuses)


def readiness(timeout: float) -> tuple[bool, dict[str, str]]:
    """Can this process serve? The database, and when configured Redis and the Celery broker.

    Returns (ready, {dependency: what failed}) within `timeout` seconds even when
    a dependency hangs (its probe is then reported as timed out). For /readyz.
    """
    results = runner.run(probes.readiness_checks(), timeout=timeout, key_prefix="readiness:")
    failures = {result.name: result.message for result in results if result.status != Status.OK}
    return not failures, failures


def prune(*, older_than_days: int | None = None, now: datetime | None = None) -> int:
    """Delete history older than HEALTH_HISTORY_DAYS (or older_than_days), in batches; returns how many."""
    days = settings.HEALTH_HISTORY_DAYS if older_than_days is None else older_than_days
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted = 0
    while True:
        batch = list(CheckResult.objects.filter(checked_at__lt=cutoff).values_list("pk", flat=True)[:PRUNE_BATCH])
        if not batch:
            break
        deleted += CheckResult.objects.filter(pk__in=batch).delete()[0]
    if deleted:
        logger.info("health_history_pruned", deleted=deleted, days=days)
    return deleted


# ---------------------------------------------------------------- inside run_and_store


def _due(check: Check, state: CheckState | None, now: datetime) -> bool:
    if check.interval is None or state is None:
        return True
    # A little slack, so that a target checked every 60 s is not skipped by a run that comes 0.1 s early.
    slack = min(settings.HEALTH_INTERVAL_SECONDS / 2, 5)
    return (now - state.checked_at).total_seconds() >= check.interval - slack


def _record(check: Check, result: Result, now: datetime) -> CheckState:
    # get_or_create: two runs at once (a manual one, the scheduled one) may both meet a new check.
    state, _ = CheckState.objects.select_for_update().get_or_create(
        name=result.name,
        defaults={"status": result.status, "message": result.message, "checked_at": result.checked_at,
                  "since": result.checked_at},
    )  # fmt: skip
    changed = state.status != result.status
    if changed:
        state.since = result.checked_at
    state.status, state.message, state.details = result.status, result.message, result.details
    state.latency_ms, state.checked_at = result.latency_ms, result.checked_at
    _alert(check, state, result, now, changed=changed)
    state.save()
    return state


def _alert(check: Check, state: CheckState, result: Result, now: datetime, *, changed: bool) -> None:
    """The `for` rule: fire once bad for longer than the check's `for`, resolve on recovery.

    While the alert is open, a change of status (warning to critical) fires again,
    which updates its severity and summary; nobody is told twice.
    """
    bad = check.alerts and result.status.at_least(check.alert_on)
    if not bad:
        state.bad_since = None
        if state.alerted:
            alert_resolve(source=ALERT_SOURCE, key=check.name)
            state.alerted = False
        return
    if state.bad_since is None:
        state.bad_since = result.checked_at
    if (now - state.bad_since).total_seconds() < check.effective_for:
        return
    severity = "critical" if result.status == Status.CRITICAL else "warning"
    if not state.alerted or changed:
        alert_fire(
            source=ALERT_SOURCE,
            key=check.name,
            severity=severity,
            summary=f"{check.name}: {result.message}",
            description=check.description,
            labels={"check": check.name, "status": str(result.status)},
            value=result.details or None,
        )
        state.alerted = True


def _forget(names: set[str]) -> None:
    """Remove the state of checks that no longer exist, resolving their alerts.

    A target exists while its row is enabled, whether or not the list of checks
    could be read this time (a database blip must not resolve their alerts).
    """
    targets = HealthTarget.objects.filter(enabled=True).values_list("name", flat=True)
    names = names | {f"{TARGET_PREFIX}{name}" for name in targets}
    for state in CheckState.objects.select_for_update().exclude(name__in=names):
        if state.alerted:
            alert_resolve(source=ALERT_SOURCE, key=state.name)
        state.delete()
