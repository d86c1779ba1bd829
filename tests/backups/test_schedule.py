"""Cron schedules: fire times read in TIME_ZONE and returned in UTC, clear errors, the period used for freshness."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from apps.backups import schedule
from apps.backups.models import BackupPolicy


def test_the_next_fire_time_is_read_in_the_portal_time_zone(settings):
    settings.TIME_ZONE = "Europe/Berlin"

    after = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    assert schedule.next_after("0 3 * * *", after) == datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 03:00 CET
    assert schedule.next_after("0 3 * * *", after).tzinfo is UTC


def test_the_next_fire_time_is_strictly_after_the_given_time():
    fire = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)

    assert schedule.next_after("0 3 * * *", fire) == fire + timedelta(days=1)
    assert schedule.next_after("0 3 * * *", fire - timedelta(seconds=1)) == fire


def test_a_time_skipped_by_daylight_saving_runs_at_once_and_a_repeated_one_runs_once(settings):
    settings.TIME_ZONE = "Europe/Berlin"  # 2026-03-29 02:00 -> 03:00; 2026-10-25 03:00 -> 02:00

    spring = schedule.next_after("30 2 * * *", datetime(2026, 3, 28, 12, 0, tzinfo=UTC))
    autumn = schedule.next_after("30 2 * * *", datetime(2026, 10, 24, 12, 0, tzinfo=UTC))

    assert spring == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST, the first minute after the gap
    assert autumn == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # the first 02:30 (CEST) only
    assert schedule.next_after("30 2 * * *", autumn) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expr", "period"),
    [
        ("0 3 * * *", timedelta(days=1)),
        ("*/15 * * * *", timedelta(minutes=15)),
        ("0 3 * * 1-5", timedelta(days=3)),  # the weekend is the longest gap
        ("0 3 1 * *", timedelta(days=31)),
        ("30 4 * * 0", timedelta(days=7)),
    ],
)
def test_the_period_is_the_longest_gap_between_runs(expr, period):
    assert schedule.period(expr) == period


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("", "it needs 5 fields"),
        ("daily", "it needs 5 fields"),
        ("0 0 3 * * *", "it has 6"),
        ("61 * * * *", "Bad minute"),
        ("0 25 * * *", "Bad hour"),
        ("0 3 30 2 *", "Bad day-of-month"),
        ("0 3 * * mon-xyz", "Bad day-of-week"),
    ],
)
def test_an_invalid_expression_is_refused_with_the_reason(expr, says):
    with pytest.raises(ValidationError) as refused:
        schedule.validate(expr)

    assert says in refused.value.messages[0]
    assert repr(expr) in refused.value.messages[0]


def test_a_valid_expression_passes():
    schedule.validate("0 3 * * *")
    schedule.validate(" 5 4  * * sun ")


def test_a_policy_freshness_limit_is_twice_its_period_unless_set():
    policy = BackupPolicy(name="p", schedule="0 * * * *")

    assert policy.freshness_limit() == timedelta(hours=2)
    policy.max_age = timedelta(minutes=90)
    assert policy.freshness_limit() == timedelta(minutes=90)
