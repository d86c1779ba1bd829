"""Writing the time series: one tick's samples, each series' last value, the 1-minute and 1-hour rollups; pruning.

All of a tick is written in one transaction with a fixed number of calls to the
database, however many series it has: one SELECT of the series' ids (plus one
INSERT for new series), then an executemany each of the samples' INSERT, the
series' last-value UPDATE and the rollups' upsert (pipelined by psycopg on
PostgreSQL; in-process statements on SQLite).
"""

from collections.abc import Iterable
from datetime import datetime

from django.db import connection
from django.db.models import QuerySet

from apps.metrics.models import Rollup, Sample, Series

PRUNE_BATCH = 5000
UNITS = [  # the series' unit, from the end of its name (before any labels)
    ("bytes_per_second", "bytes/s"),
    ("per_second", "/s"),
    ("percent", "%"),
    ("bytes", "bytes"),
    (".ms", "ms"),
]


def unit_of(name: str) -> str:
    base = name.partition("{")[0]
    return next((unit for suffix, unit in UNITS if base.endswith(suffix)), "")


def write(at: datetime, values: dict[str, float]) -> None:
    """Store one tick: a sample per series, the series' last value and time, and fold it into the rollups.

    Call it inside a transaction (with the broadcast that announces it).
    """
    if not values:
        return
    ids = series_ids(values)
    quote, when = connection.ops.quote_name, connection.ops.adapt_datetimefield_value(at)
    # Plain executemany rather than bulk_create/bulk_update: the ORM's CASE WHEN per row for
    # bulk_update cost 45 ms of CPU per tick of 100 series (bench/metrics_collect.py), this 2 ms.
    samples = quote(Sample._meta.db_table)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {samples} ({quote('series_id')}, {quote('at')}, {quote('value')}) VALUES (%s, %s, %s)",  # noqa: S608
            [(ids[name], when, value) for name, value in values.items()],
        )
        cursor.executemany(
            f"UPDATE {quote(Series._meta.db_table)} SET {quote('last_at')} = %s, {quote('last_value')} = %s "  # noqa: S608
            f"WHERE {quote('id')} = %s",
            [(when, value, ids[name]) for name, value in values.items()],
        )
    fold(at, {ids[name]: value for name, value in values.items()})


def series_ids(names: Iterable[str]) -> dict[str, int]:
    """{name: id}, creating the series not seen before (concurrently safe: conflicts are ignored)."""
    names = list(names)
    ids = dict(Series.objects.filter(name__in=names).values_list("name", "pk"))
    missing = [name for name in names if name not in ids]
    if missing:
        Series.objects.bulk_create([Series(name=name, unit=unit_of(name)) for name in missing], ignore_conflicts=True)
        ids.update(Series.objects.filter(name__in=missing).values_list("name", "pk"))
    return ids


def fold(at: datetime, values: dict[int, float]) -> None:
    """Add one sample per series to its 1-minute and 1-hour rollup rows: count, total, min, max, last.

    INSERT ... ON CONFLICT DO UPDATE, which SQLite (3.24+) and PostgreSQL both
    speak, so a bucket is created or updated in one statement without reading it.
    """
    quote = connection.ops.quote_name
    table = quote(Rollup._meta.db_table)
    count, total, low, high, last = (quote(c) for c in ("count", "total", "minimum", "maximum", "last"))
    # Identifiers only are interpolated (quoted by the backend); every value is a parameter.
    sql = (
        f"INSERT INTO {table} ({quote('series_id')}, {quote('resolution')}, {quote('start')}, "  # noqa: S608
        f"{count}, {total}, {low}, {high}, {last}) VALUES (%s, %s, %s, 1, %s, %s, %s, %s) "
        f"ON CONFLICT ({quote('series_id')}, {quote('resolution')}, {quote('start')}) DO UPDATE SET "
        f"{count} = {table}.{count} + 1, {total} = {table}.{total} + excluded.{total}, "
        f"{low} = CASE WHEN excluded.{low} < {table}.{low} THEN excluded.{low} ELSE {table}.{low} END, "
        f"{high} = CASE WHEN excluded.{high} > {table}.{high} THEN excluded.{high} ELSE {table}.{high} END, "
        f"{last} = excluded.{last}"
    )
    rows = []
    for resolution in Rollup.Resolution:
        start = connection.ops.adapt_datetimefield_value(bucket_start(at, resolution))
        rows += [(series, int(resolution), start, value, value, value, value) for series, value in values.items()]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def bucket_start(at: datetime, resolution: int) -> datetime:
    """The first instant of the rollup bucket that holds `at`."""
    return datetime.fromtimestamp(at.timestamp() // resolution * resolution, tz=at.tzinfo)


def prune(cutoffs: dict[str, datetime], *, dry_run: bool = False) -> dict[str, int]:
    """Delete raw samples and rollups older than their cutoffs, PRUNE_BATCH rows per statement.

    cutoffs: {"raw": ..., "minute": ..., "hour": ...}; daily rollups go with the hourly ones. Each batch is its own
    short transaction: a year of hourly rows is never one huge delete holding
    locks (and SQLite's write lock) for minutes. Returns the rows deleted (or
    that would be, with dry_run) per table.
    """
    targets = {
        "raw": Sample.objects.filter(at__lt=cutoffs["raw"]),
        "minute": Rollup.objects.filter(resolution=Rollup.Resolution.MINUTE, start__lt=cutoffs["minute"]),
        "hour": Rollup.objects.filter(resolution=Rollup.Resolution.HOUR, start__lt=cutoffs["hour"]),
        "day": Rollup.objects.filter(resolution=Rollup.Resolution.DAY, start__lt=cutoffs["hour"]),
    }
    if dry_run:
        return {name: rows.count() for name, rows in targets.items()}
    return {name: _delete_in_batches(rows) for name, rows in targets.items()}


def _delete_in_batches(rows: QuerySet) -> int:
    deleted = 0
    while True:
        batch = list(rows.values_list("pk", flat=True)[:PRUNE_BATCH])
        if not batch:
            return deleted
        deleted += rows.model.objects.filter(pk__in=batch).delete()[0]
