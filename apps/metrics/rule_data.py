"""What one evaluation tick reads: each rule's series row, and every series' samples in one query.

A series is read over the longest window any of its rules needs; the rules
then reduce their own part of it in Python (apps.metrics.aggregations).
"""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import FloatField, Func, Q, QuerySet

from apps.metrics.aggregations import Window
from apps.metrics.models import MetricRule, Sample, Series


class Epoch(Func):
    """A datetime column as Unix seconds, computed by the database.

    Turning 20,000 timestamps into aware datetimes in Python, then into floats,
    was half of a 1,000-rule tick on PostgreSQL.
    """

    output_field = FloatField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        return self.as_sql(compiler, connection, template="EXTRACT(EPOCH FROM %(expressions)s)::float8", **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        # Django stores UTC text; julianday() reads it to within microseconds.
        return self.as_sql(compiler, connection, template="(julianday(%(expressions)s) - 2440587.5) * 86400.0", **extra)


def load_windows(rules: Iterable[MetricRule], now: datetime) -> dict[str, Window]:
    """{series name: its row's last sample time and its samples over the longest window of its rules}.

    Two queries, whatever the number of rules and series. A named series with no
    row (never sampled) is missing from the result.
    """
    longest: dict[str, int] = {}
    for rule in rules:
        longest[rule.series] = max(longest.get(rule.series, 0), rule.window_seconds)
    windows: dict[str, Window] = {}
    ids_by_window: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for pk, name, last_at in Series.objects.filter(name__in=longest).values_list("pk", "name", "last_at"):
        windows[name] = Window(last_at=last_at.timestamp() if last_at else None)
        names[pk] = name
        ids_by_window.setdefault(longest[name], []).append(pk)
    if names:
        for series_id, at, value in recent_samples(ids_by_window, now):
            window = windows[names[series_id]]
            window.times.append(at)
            window.values.append(value)
    return windows


def recent_samples(ids_by_window: dict[int, list[int]], now: datetime) -> QuerySet:
    """(series id, Unix seconds, value) of the given series' samples, each over its window, oldest first.

    One condition per distinct window length, not per series, so the statement
    stays short with hundreds of series; the (series, at) index serves each.
    """
    recent = Q()
    for seconds, ids in ids_by_window.items():
        recent |= Q(series_id__in=ids, at__gte=now - timedelta(seconds=seconds))
    rows = Sample.objects.filter(recent, at__lte=now).order_by("series_id", "at")
    return rows.annotate(epoch=Epoch("at")).values_list("series_id", "epoch", "value")
