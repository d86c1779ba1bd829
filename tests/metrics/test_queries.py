"""series_range: the right table for the range, at most ~1,500 points, one query."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from apps.metrics.models import Rollup, Sample, Series
from apps.metrics.queries import MAX_POINTS, series_range

pytestmark = pytest.mark.django_db

END = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
MINUTE, HOUR, DAY = Rollup.Resolution.MINUTE, Rollup.Resolution.HOUR, Rollup.Resolution.DAY


def unix(moment: datetime) -> float:
    return moment.timestamp()


def rollup(series: Series, resolution: int, start: datetime, values: list[float]) -> Rollup:
    return Rollup(
        series=series,
        resolution=resolution,
        start=start,
        count=len(values),
        total=sum(values),
        minimum=min(values),
        maximum=max(values),
        last=values[-1],
    )


@pytest.fixture
def cpu() -> Series:
    return Series.objects.create(name="system.cpu.percent", unit="%")


@pytest.fixture
def memory() -> Series:
    return Series.objects.create(name="system.memory.percent", unit="%")


def test_fifteen_minutes_are_read_from_raw_samples_one_point_each(cpu, memory):
    Sample.objects.bulk_create(
        [Sample(series=cpu, at=END - timedelta(seconds=5 * i), value=float(i)) for i in range(1, 4)]
        + [Sample(series=memory, at=END - timedelta(minutes=20), value=99.0)]  # before the range
    )
    found = series_range(["system.cpu.percent", "system.memory.percent"], END - timedelta(minutes=15), END)
    assert found["resolution"] == 0
    assert found["series"]["system.cpu.percent"] == [
        [unix(END - timedelta(seconds=15)), 3.0, 3.0, 3.0],
        [unix(END - timedelta(seconds=10)), 2.0, 2.0, 2.0],
        [unix(END - timedelta(seconds=5)), 1.0, 1.0, 1.0],
    ]
    assert found["series"]["system.memory.percent"] == []


def test_a_day_is_read_from_minute_rollups(cpu):
    start = END - timedelta(hours=24)
    Rollup.objects.bulk_create(
        [
            rollup(cpu, MINUTE, start, [10.0, 20.0, 30.0]),
            rollup(cpu, MINUTE, start + timedelta(minutes=1), [40.0]),
            rollup(cpu, HOUR, start, [1.0]),  # another resolution: not read
        ]
    )
    found = series_range(["system.cpu.percent"], start, END)
    assert (found["resolution"], found["step"]) == (60, 60)
    first, second = unix(start), unix(start) + 60
    assert found["series"]["system.cpu.percent"] == [[first, 20.0, 10.0, 30.0], [second, 40.0, 40.0, 40.0]]


def test_thirty_days_are_read_from_hourly_rollups(cpu):
    start = END - timedelta(days=30)
    Rollup.objects.bulk_create([rollup(cpu, HOUR, start, [5.0]), rollup(cpu, MINUTE, start, [7.0])])
    found = series_range(["system.cpu.percent"], start, END)
    assert found["resolution"] == 3600
    assert found["series"]["system.cpu.percent"] == [[unix(start), 5.0, 5.0, 5.0]]


def test_a_year_is_read_from_daily_rollups(cpu):
    start = END - timedelta(days=365)
    Rollup.objects.bulk_create([rollup(cpu, DAY, start, [4.0, 6.0]), rollup(cpu, HOUR, start, [7.0])])
    found = series_range(["system.cpu.percent"], start, END)
    assert (found["resolution"], found["step"]) == (86400, 86400)
    assert found["series"]["system.cpu.percent"] == [[unix(start), 5.0, 4.0, 6.0]]


def test_two_days_of_minute_rollups_are_merged_into_at_most_1500_points_weighted_by_count(cpu):
    start = END - timedelta(days=2)
    Rollup.objects.bulk_create(
        [rollup(cpu, MINUTE, start + timedelta(minutes=m), [float(m % 2)] * (1 + m % 2)) for m in range(2 * 1440)]
    )
    found = series_range(["system.cpu.percent"], start, END)
    points = found["series"]["system.cpu.percent"]
    assert (found["resolution"], found["step"]) == (60, 120)
    assert len(points) <= MAX_POINTS
    assert points[0] == [unix(start), 2 / 3, 0.0, 1.0]  # (0 x 1 + 1 x 2) / (1 + 2)
    assert all(later[0] - earlier[0] == found["step"] for earlier, later in itertools.pairwise(points))


def test_two_hours_of_one_second_samples_stay_within_1500_points(cpu, settings):
    settings.MONITORING_INTERVAL_SECONDS = 1
    start = END - timedelta(hours=2)
    Sample.objects.bulk_create([Sample(series=cpu, at=start + timedelta(seconds=s), value=1.0) for s in range(7200)])
    found = series_range(["system.cpu.percent"], start, END)
    assert found["resolution"] == 0
    assert len(found["series"]["system.cpu.percent"]) == 7200 // found["step"] <= MAX_POINTS


def test_all_series_come_from_one_query_on_their_table_after_one_for_their_ids(cpu, memory, django_assert_num_queries):
    with django_assert_num_queries(2):
        series_range(["system.cpu.percent", "system.memory.percent", "no.such.series"], END - timedelta(days=7), END)


def test_an_empty_or_reversed_range_is_refused():
    with pytest.raises(ValueError, match="end after it starts"):
        series_range(["system.cpu.percent"], END, END)
