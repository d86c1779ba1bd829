"""/api/v1/metrics/series/: the series list and range queries from the right table; validation; who may."""

from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import pytest

from apps.metrics.models import Rollup, Sample, Series

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]
URL = "/api/v1/metrics/series/"
RANGE = f"{URL}range/"
END = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CPU, MEMORY = "system.cpu.percent", "system.memory.percent"


@pytest.fixture
def cpu() -> Series:
    return Series.objects.create(name=CPU, unit="%", last_value=12.5, last_at=datetime.now(UTC) - timedelta(seconds=3))


@pytest.fixture
def memory() -> Series:
    return Series.objects.create(name=MEMORY, unit="%")


def between(start: datetime, end: datetime, *names: str) -> dict:
    return {"name": list(names), "start": start.isoformat(), "end": end.isoformat()}


def fields(response) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


def test_the_series_list_has_each_series_unit_last_value_and_age(read_client, cpu, memory):
    response = read_client.get(URL)

    assert response.status_code == HTTPStatus.OK
    first, second = response.json()["items"]
    assert (first["name"], first["unit"], first["last_value"]) == (CPU, "%", 12.5)
    assert 3 <= first["age_seconds"] < 60 and first["last_at"] is not None
    assert second == {"name": MEMORY, "unit": "%", "last_value": None, "last_at": None, "age_seconds": None}


def test_the_series_list_filters_by_prefix(read_client, cpu, memory):
    assert [item["name"] for item in read_client.get(URL, {"prefix": "system.mem"}).json()["items"]] == [MEMORY]


def test_fifteen_minutes_are_served_from_raw_samples(read_client, cpu, memory, settings):
    Sample.objects.bulk_create([Sample(series=cpu, at=END - timedelta(seconds=5 * i), value=float(i)) for i in (1, 2)])

    response = read_client.get(RANGE, between(END - timedelta(minutes=15), END, CPU, MEMORY))

    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert (body["resolution"], body["step"]) == (0, settings.MONITORING_INTERVAL_SECONDS)  # a point per sample
    at = (END - timedelta(seconds=10)).timestamp()
    assert body["series"] == {CPU: [[at, 2.0, 2.0, 2.0], [at + 5, 1.0, 1.0, 1.0]], MEMORY: []}
    assert datetime.fromisoformat(body["start"]) == END - timedelta(minutes=15)


def test_a_day_is_served_from_minute_rollups(read_client, cpu):
    start = END - timedelta(days=1)
    Rollup.objects.create(series=cpu, resolution=Rollup.Resolution.MINUTE, start=start, count=4, total=20.0,
                          minimum=2.0, maximum=9.0, last=3.0)  # fmt: skip
    Sample.objects.create(series=cpu, at=start, value=50.0)  # raw samples are not read for a day

    body = read_client.get(RANGE, between(start, END, CPU)).json()

    assert body["resolution"] == Rollup.Resolution.MINUTE
    assert body["series"][CPU] == [[start.timestamp(), 5.0, 2.0, 9.0]]


def test_a_name_repeated_is_read_once(read_client, cpu):
    response = read_client.get(RANGE, between(END - timedelta(hours=1), END, CPU, CPU))

    assert response.status_code == HTTPStatus.OK
    assert list(response.json()["series"]) == [CPU]


def test_unknown_series_are_a_404_naming_them(read_client, cpu):
    response = read_client.get(RANGE, between(END - timedelta(hours=1), END, CPU, "system.nonesuch", "typo.cpu"))

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response["Content-Type"] == "application/problem+json"
    detail = response.json()["detail"]
    assert "'system.nonesuch', 'typo.cpu'" in detail and "cpu.percent" not in detail
    assert fields(response) == ["name"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"start": "2026-12-01T11:00:00Z", "end": "2026-12-01T12:00:00Z"}, "name"),
        ({"name": CPU, "end": "2026-12-01T12:00:00Z"}, "start"),
        ({"name": CPU, "start": "yesterday", "end": "2026-12-01T12:00:00Z"}, "start"),
        ({"name": CPU, "start": "2026-12-01T11:00:00Z", "end": "2026-13-01T12:00:00Z"}, "end"),
        ({"name": CPU, "start": "2026-12-01T11:00:00", "end": "2026-12-01T12:00:00Z"}, "start"),  # no time zone
        ({"name": CPU, "start": "0001-01-01T00:00:00+01:00", "end": "2026-12-01T12:00:00Z"}, "start"),
        ({"name": CPU, "start": "1796126400", "end": "2026-12-01T12:00:00Z"}, "start"),  # Unix time: not date-time
        ({"name": CPU, "start": "2026-12-01T11:00:00Z", "end": "1796130000.5"}, "end"),
        ({"name": "", "start": "2026-12-01T11:00:00Z", "end": "2026-12-01T12:00:00Z"}, "name.0"),
        ({"name": CPU, "start": "2026-12-01T12:00:00Z", "end": "2026-12-01T12:00:00Z"}, "end"),
        ({"name": CPU, "start": "2026-12-01T12:00:00Z", "end": "2026-12-01T11:00:00Z"}, "end"),
        ({"name": CPU, "start": "2016-12-01T12:00:00Z", "end": "2026-12-01T12:00:00Z"}, "end"),  # ten years
        ({"name": [f"s{n}" for n in range(21)], "start": "2026-12-01T11:00:00Z", "end": "2026-12-01T12:00Z"}, "name"),
    ],
)
def test_a_bad_range_is_a_400_naming_the_field(read_client, cpu, query, field):
    response = read_client.get(RANGE, query)

    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert fields(response) == [field]


def test_a_year_is_allowed_and_the_longest_range_follows_the_retention(read_client, cpu, settings):
    year = between(END - timedelta(days=366), END, CPU)
    assert read_client.get(RANGE, year).json()["resolution"] == Rollup.Resolution.DAY

    settings.METRICS_HOUR_RETENTION_DAYS = 3 * 365
    assert read_client.get(RANGE, between(END - timedelta(days=3 * 365), END, CPU)).status_code == HTTPStatus.OK
    assert read_client.get(RANGE, between(END - timedelta(days=3 * 365 + 1), END, CPU)).status_code == 400


def test_without_credentials_both_are_401(client, cpu):
    for response in (client.get(URL), client.get(RANGE, between(END - timedelta(hours=1), END, CPU))):
        assert response.status_code == HTTPStatus.UNAUTHORIZED


def test_staff_need_the_permission_to_view_series(staff_client, staff_user, grant, cpu):
    hour = between(END - timedelta(hours=1), END, CPU)
    refused = [staff_client.get(URL), staff_client.get(RANGE, hour)]
    assert [response.status_code for response in refused] == [HTTPStatus.FORBIDDEN] * 2
    assert "metrics.view_series" in refused[1].json()["detail"]

    grant(staff_user, "metrics.view_series")
    assert [staff_client.get(URL).status_code, staff_client.get(RANGE, hour).status_code] == [HTTPStatus.OK] * 2
