"""Metric alert rules: evaluate every enabled rule, fire and resolve their alerts, remember their state.

The Prometheus split (ARCHITECTURE.md): a rule decides *when* a series is wrong
(an aggregation over a window compared with a threshold, held for `for`);
apps.alerts decides who is told. One tick reads the rules, each rule's series
row, and the samples of every series over the longest window any of its rules
needs in one query, reduces them in Python, and writes every rule's state in
one bulk update: its cost grows with the samples read, not with the rules.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.alerts.models import Alert, State
from apps.alerts.services import alert_fire, alert_resolve
from apps.metrics import rule_summary
from apps.metrics.aggregations import COMPARE, Window, evaluate
from apps.metrics.models import MetricRule
from apps.metrics.rule_data import load_windows

logger = structlog.get_logger(__name__)

ALERT_SOURCE = "metrics"
RuleState = MetricRule.State
STATE_FIELDS = ["state", "pending_since", "last_value", "last_evaluated_at"]
GAP_INTERVALS = 3  # evaluations missed in a row before a pending `for` starts again
WRITE_BATCH = 500  # rows per UPDATE elsewhere than PostgreSQL: one statement's CASE list stays small


@dataclass(frozen=True)
class Verdict:
    """What one tick decided for one rule."""

    state: str
    value: float | None
    pending_since: datetime | None


def rules_evaluate(*, now: datetime | None = None) -> dict[str, int]:
    """Evaluate every enabled rule once; returns counts by state and of alerts fired, resolved and failed.

    A rule whose condition holds is pending, then firing once it has held for
    `for_seconds` (alert_fire(source="metrics", key=<rule name>)); a rule that
    stops holding, or has no data in its window, resolves its alert. A
    condition that flaps within `for` fires nothing. A rule firing whose alert
    is not open (resolved by hand, or the rule renamed) fires again; an open
    metrics alert whose rule was deleted or disabled is resolved. One rule
    that cannot fire (a database error, a label the engine refuses) is logged
    and counted; the others are evaluated all the same.
    """
    now = now or timezone.now()
    rules = list(MetricRule.objects.filter(enabled=True))
    windows = load_windows(rules, now)
    open_alerts = dict(
        Alert.objects.filter(source=ALERT_SOURCE).exclude(state=State.RESOLVED).values_list("key", "severity")
    )
    counts: Counter[str] = Counter()
    for rule in rules:
        verdict = _judge(rule, windows.get(rule.series), now)
        counts[verdict.state] += 1
        counts[_alert(rule, verdict, open_alerts)] += 1
        rule.state, rule.last_value, rule.pending_since = verdict.state, verdict.value, verdict.pending_since
        rule.last_evaluated_at = now
    _write_states(rules)
    counts["resolved"] += _retire(set(open_alerts) - {rule.name for rule in rules})
    counts = +counts  # drops the zero counts and "" (nothing done)
    counts.pop("", None)
    summary = {"rules": len(rules), **{str(key): value for key, value in counts.items()}}
    if counts["fired"] or counts["resolved"] or counts["failed"]:
        logger.info("metric_rules_evaluated", **summary)
    return summary


def rule_evaluate(rule: MetricRule, *, now: datetime | None = None) -> Verdict:
    """Evaluate one rule now (the admin's "evaluate now"): its state is written, its alert fired or resolved."""
    now = now or timezone.now()
    verdict = _judge(rule, load_windows([rule], now).get(rule.series), now)
    open_alerts = dict(
        Alert.objects.filter(source=ALERT_SOURCE, key=rule.name)
        .exclude(state=State.RESOLVED)
        .values_list("key", "severity")
    )
    if rule.enabled:
        _alert(rule, verdict, open_alerts)
    elif rule.name in open_alerts:
        _retire({rule.name})
    state = verdict.state if rule.enabled else RuleState.OK
    MetricRule.objects.filter(pk=rule.pk).update(
        state=state, last_value=verdict.value, pending_since=verdict.pending_since if rule.enabled else None,
        last_evaluated_at=now,
    )  # fmt: skip
    return verdict


def rule_retired(name: str) -> None:
    """A rule was deleted or disabled: resolve its alert now rather than at the next tick."""
    _retire({name})


# ---------------------------------------------------------------- inside a tick


def _write_states(rules: list[MetricRule]) -> None:
    """Every rule's evaluation state in one statement.

    On PostgreSQL an UPDATE joined to unnest()ed arrays: Django's bulk_update
    builds a CASE per field with a branch per row, which took 1.2-1.9 s of
    Python for 1,000 rules, longer than the whole tick's budget.
    """
    if connection.vendor != "postgresql":
        MetricRule.objects.bulk_update(rules, STATE_FIELDS, batch_size=WRITE_BATCH)
        return
    table = connection.ops.quote_name(MetricRule._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS r SET state = s.state, pending_since = s.pending_since,"  # noqa: S608 - our table name
            " last_value = s.last_value, last_evaluated_at = s.evaluated"
            " FROM unnest(%s::bigint[], %s::varchar[], %s::timestamptz[], %s::float8[], %s::timestamptz[])"
            " AS s(id, state, pending_since, last_value, evaluated) WHERE r.id = s.id",
            [
                [rule.pk for rule in rules],
                [rule.state for rule in rules],
                [rule.pending_since for rule in rules],
                [rule.last_value for rule in rules],
                [rule.last_evaluated_at for rule in rules],
            ],
        )


def _judge(rule: MetricRule, window: Window | None, now: datetime) -> Verdict:
    """The `for` rule: pending from the first evaluation where the condition holds, firing once held long enough."""
    value = evaluate(rule.aggregation, rule.window_seconds, window, now.timestamp())
    if value is None:
        return Verdict(RuleState.NO_DATA, None, None)
    if not COMPARE[rule.comparison](value, rule.threshold):
        return Verdict(RuleState.OK, value, None)
    holding = rule.state in (RuleState.PENDING, RuleState.FIRING) and rule.pending_since is not None
    since = rule.pending_since if holding and not _gap(rule, now) else now
    if (now - since).total_seconds() >= rule.for_seconds:
        return Verdict(RuleState.FIRING, value, since)
    return Verdict(RuleState.PENDING, value, since)


def _gap(rule: MetricRule, now: datetime) -> bool:
    """Was the rule not evaluated for a while (the scheduler down)? Then a pending `for` starts again:
    nobody saw the condition hold in between. (A firing rule keeps firing: its alert is already open.)"""
    if rule.state == RuleState.FIRING or rule.last_evaluated_at is None:
        return False
    return (now - rule.last_evaluated_at).total_seconds() > GAP_INTERVALS * settings.ALERTS_EVAL_INTERVAL_SECONDS


def _alert(rule: MetricRule, verdict: Verdict, open_alerts: dict[str, str]) -> str:
    """Fire or resolve the rule's alert as the verdict says; returns what was done ("" for nothing)."""
    is_open = rule.name in open_alerts
    try:
        if verdict.state == RuleState.FIRING and (not is_open or open_alerts[rule.name] != rule.severity):
            alert_fire(
                source=ALERT_SOURCE,
                key=rule.name,
                severity=rule.severity,
                summary=_summary(rule, verdict.value),
                description=_description(rule),
                labels={**_labels(rule.labels), "series": rule.series},
                value=verdict.value,
            )
            return "fired"
        if verdict.state != RuleState.FIRING and is_open:
            alert_resolve(source=ALERT_SOURCE, key=rule.name)
            return "resolved"
    except Exception:  # one rule's failure must not stop the tick; it is retried at the next one
        logger.exception("metric_rule_alert_failed", rule=rule.name, state=verdict.state)
        return "failed"
    return ""


def _retire(names: set[str]) -> int:
    """Resolve the open alerts of rules that are gone or disabled, and reset disabled rules' state."""
    for name in sorted(names):
        try:
            alert_resolve(source=ALERT_SOURCE, key=name)
        except Exception:  # tried again at the next tick: the alert is still open and still orphaned
            logger.exception("metric_rule_retire_failed", rule=name)
    # A disabled rule shows no stale "firing" in the admin; one short UPDATE that usually touches nothing.
    MetricRule.objects.filter(enabled=False).exclude(state=RuleState.OK, pending_since=None).update(
        state=RuleState.OK, pending_since=None
    )
    return len(names)


def _summary(rule: MetricRule, value: float | None) -> str:
    rendered = rule_summary.render(
        rule.summary, value=value, threshold=rule.threshold, series=rule.series, window_seconds=rule.window_seconds
    )
    if rendered and rendered.strip():
        return rendered
    logger.warning("metric_rule_summary_unusable", rule=rule.name)
    return f"{rule.name}: {rule.aggregation} of {rule.series} is {value:g} ({rule.comparison} {rule.threshold:g})"


def _description(rule: MetricRule) -> str:
    window = rule_summary.duration(rule.window_seconds)
    held = f" for {rule_summary.duration(rule.for_seconds)}" if rule.for_seconds else ""
    condition = f"{rule.aggregation}({rule.series}[{window}]) {rule.comparison} {rule.threshold:g}"
    return f"Metric rule {rule.name}: {condition}{held}."


def _labels(labels: Any) -> dict[str, Any]:
    # A rule saved outside the admin may hold anything in its JSON field; a non-mapping is ignored, not fatal.
    return dict(labels) if isinstance(labels, dict) else {}
