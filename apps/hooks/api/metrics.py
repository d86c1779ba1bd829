"""/api/v1/metrics/series/: every series (unit, last value and its age), and a range of points for a chart.

(Prometheus scrapes /metrics itself; this is the portal's own stored history.)
A range is served by apps.metrics.queries.series_range from the finest table
that covers it: raw samples up to 2 hours, 1-minute rollups up to 2 days,
hourly ones up to 62 days, daily ones beyond; at most about 1,500 points a
series. A name that no series has is a 404 that names it, so a typo does not
look like a quiet series; a known series without data in the range has an
empty list.
"""

from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Annotated, Any

from django.conf import settings
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from apps.hooks.api.auth import require
from apps.hooks.api.inputs import Moment
from apps.hooks.api.problems import ERRORS, ApiError, Problem, bad_request
from apps.metrics import services
from apps.metrics.models import SERIES_NAME_MAX_LENGTH, Series
from apps.metrics.queries import series_range

router = Router(tags=["metrics"])
PERMISSION = "metrics.view_series"  # as the dashboard's charts and the series' admin
MAX_NAMES = 20  # as the dashboard's history endpoint: a chart shows a few series
MIN_MAX_SPAN_DAYS = 366  # a year's chart is always allowed, whatever the retention


class SeriesOut(Schema):
    name: str
    unit: str
    last_value: float | None
    last_at: datetime | None = Field(description="When its latest sample was taken; null: never sampled.")
    age_seconds: float | None


class SeriesList(Schema):
    items: list[SeriesOut]


class SeriesQuery(Schema):
    prefix: str = Field("", max_length=200, description="Only series whose name starts with this.")


class SeriesRangeQuery(Schema):
    name: list[Annotated[str, Field(min_length=1, max_length=SERIES_NAME_MAX_LENGTH)]] = Field(
        ..., min_length=1, max_length=MAX_NAMES, description="A series name; repeat for more."
    )
    start: Moment = Field(description="ISO 8601 with a time zone; included.")
    end: Moment = Field(description="After start, at most the longest metrics retention later; excluded.")


class SeriesRangeOut(Schema):
    start: datetime
    end: datetime
    resolution: int = Field(description="Seconds per row of the table read: 0 raw samples, 60, 3600 or 86400.")
    step: int = Field(description="Seconds between two points (rows are merged into buckets past ~1,500 points).")
    series: dict[str, list[list[float]]] = Field(
        description="Per name, its points in time order: [Unix seconds, average, minimum, maximum]."
    )


@router.get("/series/", response={200: SeriesList, **ERRORS}, summary="Every series with its last value")
def series_list(request: HttpRequest, query: Query[SeriesQuery]) -> dict[str, Any]:
    require(request, PERMISSION)
    return {"items": [row for row in services.series_overview() if row["name"].startswith(query.prefix)]}


@router.get(
    "/series/range/",
    response={200: SeriesRangeOut, **ERRORS, 404: Problem},
    summary="Points of some series over a time range, from the finest rollup that covers it",
)
def series_points(request: HttpRequest, query: Query[SeriesRangeQuery]) -> dict[str, Any]:
    require(request, PERMISSION)
    start, end = query.start.astimezone(UTC), query.end.astimezone(UTC)
    if end <= start:
        raise bad_request("end", "end must be after start")
    longest = max_span()
    if end - start > longest:
        raise bad_request("end", f"the range may span at most {longest.days} days (the longest metrics retention)")
    names = list(dict.fromkeys(query.name))
    known = set(Series.objects.filter(name__in=names).values_list("name", flat=True))
    unknown = [name for name in names if name not in known]
    if unknown:
        message = f"no series named {', '.join(repr(name[:200]) for name in unknown)} (GET /api/v1/metrics/series/)"
        raise ApiError(HTTPStatus.NOT_FOUND, message, errors=[{"field": "name", "message": message}])
    return {"start": start, "end": end, **series_range(names, start, end)}


def max_span() -> timedelta:
    """Nothing older than the hourly and daily rollups' retention is kept: a longer range would only cost."""
    return timedelta(days=max(settings.METRICS_HOUR_RETENTION_DAYS, MIN_MAX_SPAN_DAYS))
