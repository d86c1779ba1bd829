"""The metrics app's service functions: collect a tick, store and broadcast it; list series; prune.

collect_and_store() is the tick (the scheduled task and `metrics collect`);
series_overview() serves `metrics series`; prune() enforces the retention.
"""

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from apps.core.broadcast import broadcast_on_commit
from apps.metrics import reports, store
from apps.metrics.collectors import Tick, registry, run
from apps.metrics.models import Series

logger = structlog.get_logger(__name__)

TOPIC = "metrics"
MEMORY_KEY = "opsportal:metrics:memory"  # the machine counters of the last tick, for rates
PRIME_SECONDS = 0.5


@dataclass(frozen=True)
class Collected:
    """One tick: when, every series' value, and how long each collector took (ms)."""

    at: datetime
    values: dict[str, float]
    timings: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.timestamp(), "values": self.values, "timings_ms": self.timings}


def collect_and_store(*, now: datetime | None = None, prime: bool = False) -> Collected:
    """Collect one tick, store it in one transaction, and broadcast it on "metrics" after the commit.

    The machine collectors run first, outside the transaction; inside it the
    processes' reports are consumed and turned into HTTP, process and reading
    series; then the samples, last values and rollups are written and one
    frame {"at", "values"} is broadcast. metrics.collect.ms is the tick's own
    wall time up to the write. prime: when no earlier tick left counters to
    compute rates from (a first `metrics collect`), take a reading, wait half a
    second, then collect, so the CPU and I/O rates are there.
    """
    started = time.perf_counter()
    memory = cache.get(MEMORY_KEY) or {}
    if prime and not memory:
        run(registry.collectors(reads_reports=False), Tick(timezone.now(), memory))
        time.sleep(PRIME_SECONDS)
        started = time.perf_counter()
    tick = Tick(now or timezone.now(), memory)
    values, timings = run(registry.collectors(reads_reports=False), tick)
    cache.set(MEMORY_KEY, tick.memory, timeout=3600)
    with transaction.atomic():
        tick.windows = reports.consume(tick.now, interval=settings.MONITORING_INTERVAL_SECONDS)
        found, more = run(registry.collectors(reads_reports=True), tick)
        values.update(found)
        timings.update(more)
        values["metrics.collect.ms"] = (time.perf_counter() - started) * 1000
        store.write(tick.now, values)
        broadcast_on_commit(TOPIC, "sample", {"at": tick.now.timestamp(), "values": values})
    return Collected(tick.now, values, timings)


def claim_tick(*, now: datetime | None = None) -> bool:
    """True when this caller may collect the tick at `now`: one claim per half interval in the deployment."""
    return reports.claim_tick(now or timezone.now(), interval=settings.MONITORING_INTERVAL_SECONDS)


def series_overview(*, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every series with its unit, last value and the age of that value in seconds (None: never sampled)."""
    now = now or timezone.now()
    rows = Series.objects.order_by("name").values_list("name", "unit", "last_value", "last_at")
    return [
        {"name": name, "unit": unit, "last_value": value, "last_at": at.isoformat() if at else None,
         "age_seconds": round((now - at).total_seconds(), 1) if at else None}
        for name, unit, value, at in rows
    ]  # fmt: skip


def retention_cutoffs(now: datetime | None = None) -> dict[str, datetime]:
    """The oldest instant kept in each table under METRICS_*_RETENTION_*."""
    now = now or timezone.now()
    return {
        "raw": now - timedelta(hours=settings.METRICS_RAW_RETENTION_HOURS),
        "minute": now - timedelta(days=settings.METRICS_MINUTE_RETENTION_DAYS),
        "hour": now - timedelta(days=settings.METRICS_HOUR_RETENTION_DAYS),
    }


def prune(*, now: datetime | None = None, dry_run: bool = False) -> dict[str, int]:
    """Delete raw samples and rollups past their retention, in batches; the rows deleted per table.

    With dry_run, nothing is deleted: the counts are those that would be.
    """
    deleted = store.prune(retention_cutoffs(now), dry_run=dry_run)
    if any(deleted.values()) and not dry_run:
        logger.info("metrics_pruned", **deleted)
    return deleted
