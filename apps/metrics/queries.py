"""Reading the time series: the latest value of each series, and a range for a chart."""

import math
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models import Avg, ExpressionWrapper, F, FloatField, Func, IntegerField, Max, Min, QuerySet, Sum

from apps.metrics.models import Rollup, Sample, Series


def latest_values(names: list[str] | None = None) -> dict[str, Any]:
    """The newest sample of each series (of those named): {"at": <Unix seconds>, "values": {name: value}}.

    One query on the series table (each series keeps its last value), however many samples are stored.
    """
    rows = Series.objects.filter(last_at__isnull=False)
    if names is not None:
        rows = rows.filter(name__in=names)
    values, newest = {}, None
    for name, at, value in rows.values_list("name", "last_at", "last_value"):
        values[name] = value
        newest = at if newest is None or at > newest else newest
    return {"at": newest.timestamp() if newest else None, "values": values}


# A chart is a few hundred pixels to a few thousand wide: more points than this per series only cost time.
MAX_POINTS = 1500
RAW_MAX_SPAN = timedelta(hours=2)
MINUTE_MAX_SPAN = timedelta(days=2)
HOUR_MAX_SPAN = timedelta(days=62)


class Epoch(Func):
    """Unix seconds of a datetime (a float), computed by the database: no datetime is built per row in Python.

    On PostgreSQL date_part() is a double; EXTRACT() would be a numeric, several
    times slower to divide and group. SQLite has no epoch function that survives
    Django's placeholder rewriting, hence julianday(), rounded to the millisecond
    so an aligned rollup start never lands a float's hair early.
    """

    output_field = FloatField()

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        template = "ROUND((julianday(%(expressions)s) - 2440587.5) * 86400.0, 3)"
        return super().as_sql(compiler, connection, template=template, **extra)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        return super().as_sql(compiler, connection, template="date_part('epoch', %(expressions)s)", **extra)


class TimeBucket(Func):
    """The chart point a row falls in: floor(Unix seconds / step), an integer the database groups by."""

    output_field = IntegerField()
    template = "CAST(FLOOR(%(expressions)s) AS BIGINT)"

    def __init__(self, field: str, step: int) -> None:
        super().__init__(Epoch(field) / float(step))


def series_range(names: list[str], start: datetime, end: datetime) -> dict[str, Any]:
    """Points of the named series in [start, end) for a chart: {"resolution", "step", "series"}.

    Reads the finest table that covers the range (raw samples up to 2 hours, 1-minute
    rollups up to 2 days, hourly rollups up to 62 days, daily ones beyond) in one query, after one on the series
    table for their ids. When a series would have more than MAX_POINTS rows, rows are
    grouped in the database into buckets of `step` seconds. "resolution" is the
    table's (0 = raw samples); each point is [Unix s, avg, min, max], a bucket's
    at its start. A series without data in the range (or unknown) has an empty list.
    """
    if end <= start:
        raise ValueError("the range must end after it starts")
    span = end - start
    resolution = (
        0 if span <= RAW_MAX_SPAN else 60 if span <= MINUTE_MAX_SPAN else 3600 if span <= HOUR_MAX_SPAN else 86400
    )
    natural = resolution or settings.MONITORING_INTERVAL_SECONDS  # seconds between two rows of a series
    step = natural * max(1, math.ceil(span.total_seconds() / MAX_POINTS / natural))
    found: dict[str, list[list[float]]] = {name: [] for name in names}
    # Grouping and sorting by the series' id, not its name, lets PostgreSQL aggregate in memory (a hash)
    # instead of sorting every row on disk: 290 ms against 80 ms for a year of 10 series.
    ids = dict(Series.objects.filter(name__in=names).values_list("id", "name"))
    if ids:
        rows = _rollups(ids, start, end, resolution) if resolution else _samples(ids, start, end)
        rows = rows if step == natural else _grouped(rows, "start" if resolution else "at", step)
        for series_id, at, average, low, high in _fetch(rows.values_list("series_id", "x", "average", "low", "high")):
            found[ids[series_id]].append([at, average, low, high])
    return {"resolution": resolution, "step": step, "series": found}


def _fetch(rows: QuerySet) -> list[tuple]:
    """The rows as the driver returns them: plain numbers, which need none of Django's conversions.

    Django's per-row machinery (chunked fetches, converters) cost a year's chart a third of its time.
    """
    sql, params = rows.query.sql_with_params()
    with connections[rows.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _samples(ids: dict[int, str], start: datetime, end: datetime) -> QuerySet:
    """One point per raw sample, in order; the (series, at) index serves it."""
    rows = Sample.objects.filter(series_id__in=ids, at__gte=start, at__lt=end).order_by("series_id", "at")
    return rows.annotate(x=Epoch("at"), average=F("value"), low=F("value"), high=F("value"))


def _rollups(ids: dict[int, str], start: datetime, end: datetime, resolution: int) -> QuerySet:
    """One point per rollup, in order; the (series, resolution, start) unique index serves it."""
    rows = Rollup.objects.filter(series_id__in=ids, resolution=resolution, start__gte=start, start__lt=end)
    return rows.order_by("series_id", "start").annotate(
        x=Epoch("start"),
        average=ExpressionWrapper(F("total") / F("count"), output_field=FloatField()),
        low=F("minimum"),
        high=F("maximum"),
    )


def _grouped(rows: QuerySet, field: str, step: int) -> QuerySet:
    """The same rows merged into buckets of step seconds; a bucket's average weights each rollup by its count."""
    weighted = rows.model is Rollup
    return (
        rows.values("series_id", bucket=TimeBucket(field, step))
        .annotate(
            x=F("bucket") * step,
            average=(
                ExpressionWrapper(Sum("total") / Sum("count"), output_field=FloatField()) if weighted else Avg("value")
            ),
            low=Min("minimum" if weighted else "value"),
            high=Max("maximum" if weighted else "value"),
        )
        .order_by("series_id", "bucket")
    )
