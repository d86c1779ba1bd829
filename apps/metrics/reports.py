"""The collector's side of per-process reporting: what each live process did since it was last consumed.

Reports carry cumulative figures; consume() subtracts what the previous
collection consumed (kept on the row), so each request and counter increment is
counted exactly once however the reporters' and the collector's intervals fall.
Rates are per second over each process's own window (between its two reports).
A process whose report is older than 3 intervals has stopped: its row is deleted
and it drops out of the sums.

The table holds one more row, the collector's claim (role "claim"): its `at` is
the time of the last tick claimed, so that exactly one collector runs per tick.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection

from apps.metrics import histogram
from apps.metrics.models import ProcessReport

SILENT_INTERVALS = 3
CLAIM_KEY, CLAIM_ROLE = "collector", "claim"
NEVER = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class ViewWindow:
    """One view's requests in one process's window."""

    requests: int = 0
    client_errors: int = 0
    server_errors: int = 0
    latency: histogram.Histogram = field(default_factory=dict)


@dataclass
class ProcessWindow:
    """What one process did between the report consumed last time and its newest report."""

    label: str  # "web-<pid>": the process label of its series
    seconds: float  # 0 when it has not reported since the last collection
    gauges: dict[str, float]
    process: dict[str, float]
    views: dict[str, ViewWindow]  # only what happened in the window
    rates: dict[str, float]  # counter name (or "http:<view>") -> per second over the window


def claim_tick(now: datetime, *, interval: int) -> bool:
    """Claim the tick at `now`: True for the first caller within half an interval, False for any other.

    A conditional UPDATE that touches one row or none, decided atomically by the
    database every process shares (healthchecks' sendalerts claims the same
    way): a duplicate delivery of the task, or a second beat, collects nothing.
    Its own row rather than a series' last_at, so that a collector that claims
    and then fails never looks like one that collects.
    """
    ProcessReport.objects.get_or_create(
        key=CLAIM_KEY, defaults={"role": CLAIM_ROLE, "pid": 0, "started_at": NEVER, "at": NEVER}
    )
    since = now - timedelta(seconds=interval / 2)
    return ProcessReport.objects.filter(key=CLAIM_KEY, at__lte=since).update(at=now) == 1


def consume(now: datetime, *, interval: int) -> list[ProcessWindow]:
    """The windows of the live processes, marking their reports consumed; run it inside the store's transaction.

    The rows are locked (SELECT ... FOR UPDATE on PostgreSQL; SQLite's write
    transaction serialises anyway), so two overlapping collections (the
    scheduled one and `manage.py metrics collect`) never consume a report twice.
    """
    cutoff = now - timedelta(seconds=SILENT_INTERVALS * interval)
    reports = ProcessReport.objects.exclude(role=CLAIM_ROLE)
    reports.filter(at__lt=cutoff).delete()
    rows = list(reports.select_for_update().filter(at__gte=cutoff).order_by("key"))
    windows = [window(row) for row in rows]
    _mark_consumed([(row, {**row.payload, "rates": found.rates}) for row, found in zip(rows, windows, strict=True)])
    return windows


def _mark_consumed(consumed: list[tuple[ProcessReport, dict[str, Any]]]) -> None:
    """consumed = what was read, consumed_at = its report's time: one executemany (bulk_update's CASE is slow)."""
    fields = {name: ProcessReport._meta.get_field(name) for name in ("consumed", "consumed_at")}
    quote = connection.ops.quote_name
    sql = (
        f"UPDATE {quote(ProcessReport._meta.db_table)} SET {quote('consumed')} = %s, "  # noqa: S608
        f"{quote('consumed_at')} = %s WHERE {quote('id')} = %s"
    )
    consumed_field, at_field = fields["consumed"], fields["consumed_at"]
    rows = [
        (consumed_field.get_db_prep_save(data, connection), at_field.get_db_prep_save(row.at, connection), row.pk)
        for row, data in consumed
    ]
    if rows:
        with connection.cursor() as cursor:
            cursor.executemany(sql, rows)


def window(row: ProcessReport) -> ProcessWindow:
    """One report's window: payload minus consumed over (at - consumed_at)."""
    payload, consumed = row.payload, row.consumed or {}
    seconds = (row.at - (row.consumed_at or row.started_at)).total_seconds()
    label = f"{row.role}-{row.pid}"
    gauges = dict(payload.get("gauges", {}))
    process = dict(payload.get("process", {}))
    if seconds <= 0:  # nothing new: its levels stand, its rates are those of its last window
        return ProcessWindow(label, 0.0, gauges, process, {}, dict(consumed.get("rates", {})))
    views = _views(payload.get("http", {}), consumed.get("http", {}))
    rates = {name: _grown(value, consumed.get("counters", {}).get(name)) / seconds
             for name, value in payload.get("counters", {}).items()}  # fmt: skip
    rates.update({f"http:{view}": found.requests / seconds for view, found in views.items()})
    return ProcessWindow(label, seconds, gauges, process, views, rates)


def _views(now: dict[str, Any], before: dict[str, Any]) -> dict[str, ViewWindow]:
    views = {}
    for view, (requests, client_errors, server_errors, buckets) in now.items():
        old = before.get(view) or [0, 0, 0, []]
        if requests <= old[0]:
            continue
        views[view] = ViewWindow(
            requests - old[0],
            client_errors - old[1],
            server_errors - old[2],
            histogram.grown(buckets, old[3]),
        )
    return views


def _grown(value: float, before: float | None) -> float:
    """How much a counter grew; a counter that went down was restarted by its owner: all of it is new."""
    if before is None or value < before:
        return value
    return value - before
