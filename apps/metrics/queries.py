"""Reading the time series: the latest value of each series, and a range for a chart."""

import math
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Avg, ExpressionWrapper, FloatField, Func, IntegerField, Max, Min, QuerySet, Sum

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


class TimeBucket(Func):
    """The chart point a row's time falls in: floor(Unix seconds / step), computed by the database.

    Grouping in SQL keeps a year of hourly rollups (8,760 rows per series) down to
    ~1,500 rows sent to Python. SQLite has no epoch extraction that survives
    Django's placeholder rewriting, hence julianday(); it is rounded to the
    millisecond so an aligned rollup start never lands a float's hair early,
    in the bucket before.
    """

    output_field = IntegerField()

    def __init__(self, expression: Any, step: int) -> None:
        super().__init__(expression)
        self.step = int(step)  # an int we computed, never user input: safe inside the SQL text

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        template = f"CAST(ROUND((julianday(%(expressions)s) - 2440587.5) * 86400.0, 3) / {self.step} AS INTEGER)"
        return super().as_sql(compiler, connection, template=template, **extra)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        template = f"FLOOR(EXTRACT(EPOCH FROM %(expressions)s) / {self.step})::bigint"
        return super().as_sql(compiler, connection, template=template, **extra)


def series_range(names: list[str], start: datetime, end: datetime) -> dict[str, Any]:
    """Points of the named series in [start, end) for a chart: {"resolution", "step", "series"}.

    Reads the finest table that covers the range (raw samples up to 2 hours, 1-minute
    rollups up to 2 days, hourly rollups beyond) in one query, grouped into buckets of
    `step` seconds so that no series has more than ~MAX_POINTS points. "resolution"
    is the table's (0 = raw samples); each point is [bucket start (Unix s), avg, min, max].
    A series without data in the range (or unknown) has an empty list.
    """
    if end <= start:
        raise ValueError("the range must end after it starts")
    span = end - start
    resolution = 0 if span <= RAW_MAX_SPAN else 60 if span <= MINUTE_MAX_SPAN else 3600
    step = _step(span.total_seconds(), resolution)
    window = (names, start, end, step)
    rows = _rollup_points(*window, resolution) if resolution else _raw_points(*window)
    series: dict[str, list[list[float]]] = {name: [] for name in names}
    for name, bucket, average, low, high in rows:
        series[name].append([bucket * step, average, low, high])
    return {"resolution": resolution, "step": step, "series": series}


def _step(seconds: float, resolution: int) -> int:
    """Bucket width: a whole multiple of the table's resolution that keeps a series within MAX_POINTS."""
    unit = resolution or 1
    return unit * max(1, math.ceil(seconds / MAX_POINTS / unit))


def _raw_points(names: list[str], start: datetime, end: datetime, step: int) -> QuerySet:
    """(name, bucket, avg, min, max) rows from raw samples, ordered; the (series, at) index serves it."""
    return (
        Sample.objects.filter(series__name__in=names, at__gte=start, at__lt=end)
        .values("series__name", bucket=TimeBucket("at", step))
        .annotate(average=Avg("value"), low=Min("value"), high=Max("value"))
        .order_by("series__name", "bucket")
        .values_list("series__name", "bucket", "average", "low", "high")
    )


def _rollup_points(names: list[str], start: datetime, end: datetime, step: int, resolution: int) -> QuerySet:
    """The same from rollups: a bucket's average weights each rollup by its count, as the raw average would."""
    return (
        Rollup.objects.filter(series__name__in=names, resolution=resolution, start__gte=start, start__lt=end)
        .values("series__name", bucket=TimeBucket("start", step))
        .annotate(
            average=ExpressionWrapper(Sum("total") / Sum("count"), output_field=FloatField()),
            low=Min("minimum"),
            high=Max("maximum"),
        )
        .order_by("series__name", "bucket")
        .values_list("series__name", "bucket", "average", "low", "high")
    )
