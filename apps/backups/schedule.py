"""Cron expressions of backup policies: validated, and turned into fire times in the portal's time zone.

"0 3 * * *" means 03:00 where the operators are (TIME_ZONE), not 03:00 UTC, so
the next fire time is computed on local wall-clock time (cronsim mimics Debian
cron across daylight-saving changes: a skipped 02:30 runs at 03:00, a repeated
01:30 runs once) and returned as an aware UTC datetime for the database.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import pairwise

from cronsim import CronSim, CronSimError
from django.core.exceptions import ValidationError
from django.utils import timezone

FIELDS = "minute hour day-of-month month day-of-week"
# A period is the longest gap among this many successive fire times: enough to see a weekend
# in "0 3 * * 1-5", a short month in "0 3 1 * *" and a daylight-saving change in a daily schedule.
PERIOD_SAMPLE = 13


def validate(expr: str) -> None:
    """Raise ValidationError saying what is wrong unless expr is a five-field cron expression that fires."""
    next_after(expr, timezone.now())


def next_after(expr: str, after: datetime, tz: tzinfo | None = None) -> datetime:
    """The first fire time strictly after `after` (aware), read in `tz` (default TIME_ZONE), returned aware in UTC.

    Raises ValidationError for an invalid expression (as validate()).
    """
    local = after.astimezone(tz or timezone.get_default_timezone())
    return _first(_fires(expr, local), expr).astimezone(UTC)


def period(expr: str) -> timedelta:
    """How long the schedule may leave between two runs: the longest gap among its next fire times."""
    fires = _fires(expr, timezone.localtime())
    times = [_first(fires, expr) for _ in range(PERIOD_SAMPLE)]
    return max(later - earlier for earlier, later in pairwise(times))


def _fires(expr: str, start: datetime) -> Iterator[datetime]:
    fields = str(expr).split()
    if len(fields) != 5:  # cronsim also takes a seconds field: not a cron expression operators know
        raise ValidationError(
            f"{expr!r} is not a cron expression: it needs 5 fields ({FIELDS}), for example '0 3 * * *' "
            f"for 03:00 every day; it has {len(fields)}.",
            code="invalid_cron",
        )
    try:
        return CronSim(" ".join(fields), start)
    except CronSimError as error:
        message = f"{expr!r} is not a valid cron expression ({FIELDS}): {error}."
        raise ValidationError(message, code="invalid_cron") from None


def _first(fires: Iterator[datetime], expr: str) -> datetime:
    try:
        return next(fires)
    except StopIteration:  # cronsim gives up after 50 years
        message = f"{expr!r} never fires (no such date in the next 50 years)."
        raise ValidationError(message, code="invalid_cron") from None
