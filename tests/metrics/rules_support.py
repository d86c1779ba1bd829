"""Helpers for the metric rule tests: series with samples at chosen instants, rules with defaults."""

from datetime import UTC, datetime, timedelta
from typing import Any

from apps.metrics.models import MetricRule, Sample, Series

START = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)


def record(name: str, points: dict[float, float], *, now: datetime = START) -> Series:
    """Samples of `name` at now + offset seconds (offsets are usually negative); the row's last_* follow."""
    series, _ = Series.objects.get_or_create(name=name)
    Sample.objects.bulk_create(
        Sample(series=series, at=now + timedelta(seconds=offset), value=value) for offset, value in points.items()
    )
    newest = max(points)
    if series.last_at is None or now + timedelta(seconds=newest) > series.last_at:
        series.last_at, series.last_value = now + timedelta(seconds=newest), points[newest]
        series.save(update_fields=["last_at", "last_value"])
    return series


def make_rule(**fields: Any) -> MetricRule:
    defaults: dict[str, Any] = {
        "name": "cpu-high",
        "series": "system.cpu.percent",
        "aggregation": "avg",
        "window_seconds": 60,
        "comparison": ">",
        "threshold": 80.0,
        "for_seconds": 0,
        "severity": "critical",
        "summary": "CPU at {value:.0f} % (over {threshold:g} % for {window}) on {series}",
    }
    return MetricRule.objects.create(**{**defaults, **fields})
