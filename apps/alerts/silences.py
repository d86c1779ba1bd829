"""Which silence, if any, covers an alert now, and until when."""

from collections.abc import Mapping
from datetime import datetime, timedelta

import structlog
from django.utils import timezone

from apps.alerts import matchers, queries
from apps.alerts.models import Silence

logger = structlog.get_logger(__name__)
PERIOD = {Silence.Repeat.DAILY: timedelta(days=1), Silence.Repeat.WEEKLY: timedelta(days=7)}


def window(silence: Silence, now: datetime) -> tuple[datetime, datetime] | None:
    """The silence's window that contains now, or None.

    A repeating window keeps its wall-clock time in the portal's time zone
    (a weekly 02:00-04:00 window stays at 02:00 across daylight saving changes).
    """
    if now < silence.starts_at:
        return None
    if not silence.repeat:
        return (silence.starts_at, silence.ends_at) if now < silence.ends_at else None
    if silence.repeat_until is not None and now >= silence.repeat_until:
        return None
    zone = timezone.get_current_timezone()
    first = silence.starts_at.astimezone(zone).replace(tzinfo=None)
    duration, period = silence.ends_at - silence.starts_at, PERIOD[silence.repeat]
    periods = (now.astimezone(zone).replace(tzinfo=None) - first) // period
    for n in (periods, periods - 1):  # a daylight saving change can shift "now" across a period's edge
        start = (first + n * period).replace(tzinfo=zone)
        if start <= now < start + duration:
            return start, start + duration
    return None


def covering(
    fields: Mapping[str, str], now: datetime, candidates: list[Silence] | None = None
) -> tuple[Silence, datetime] | None:
    """The silence that covers an alert with these fields now, and when its window ends (the latest, if several).

    Among candidates (the silences a producer holds), or those in the database.
    """
    if candidates is None:
        candidates = queries.silences_not_over(now)
    best: tuple[Silence, datetime] | None = None
    for silence in candidates:
        span = window(silence, now)
        if span is None:
            continue
        try:
            rules = matchers.parse_all(silence.matchers)
        except matchers.MatcherError:  # saved past the form's validation; it silences nothing
            logger.warning("silence_unreadable", silence=silence.pk)
            continue
        if not matchers.all_match(rules, fields):
            continue
        if best is None or span[1] > best[1]:
            best = (silence, span[1])
    return best


def active(now: datetime) -> list[Silence]:
    """The silences whose window contains now (a repeating one only during its windows)."""
    return [silence for silence in queries.silences_not_over(now) if window(silence, now) is not None]
