"""Retention planning (GFS, like `restic forget`): examples with their reasons, and properties over random
timelines checked against an independent oracle."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from apps.backups.retention import NEWEST_VERIFIED, NO_RULE, Rules, Snapshot, plan

BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2024, 1, 1, tzinfo=UTC)


def daily(days: int, *, hour: int = 2, verified: bool = True) -> list[Snapshot]:
    """One backup a day at hour:00 UTC for `days` days up to 2026-11-30, ids in age order (1 = oldest)."""
    last = datetime(2026, 11, 30, hour, tzinfo=UTC)
    return [Snapshot(n + 1, last - timedelta(days=days - 1 - n), verified) for n in range(days)]


def test_each_kept_backup_says_which_rules_keep_it():
    backups = daily(60)

    decided = plan(backups, Rules(daily=7, weekly=4, monthly=6), BERLIN)

    newest = decided.keep[60]  # 2026-11-30, a Monday
    assert newest == ["daily 2026-11-30", "weekly 2026-W49", "monthly 2026-11", NEWEST_VERIFIED]
    assert decided.keep[54] == ["daily 2026-11-24"]
    assert decided.keep[59] == ["daily 2026-11-29", "weekly 2026-W48"]  # a Sunday: the end of an ISO week
    assert decided.keep[52] == ["weekly 2026-W47"]
    assert decided.keep[30] == ["monthly 2026-10"]  # 2026-10-31; 2026-10-02 is the oldest backup
    assert sorted(decided.keep) == [30, 45, 52, 54, 55, 56, 57, 58, 59, 60]
    assert decided.delete == [pk for pk in range(60, 0, -1) if pk not in decided.keep]


def test_buckets_are_read_in_the_portal_time_zone():
    late = Snapshot(1, datetime(2026, 11, 30, 23, 30, tzinfo=UTC), True)  # 00:30 on 1 December in Berlin

    assert plan([late], Rules(daily=1), BERLIN).keep[1][0] == "daily 2026-12-01"
    assert plan([late], Rules(daily=1), UTC).keep[1][0] == "daily 2026-11-30"


def test_keep_last_keeps_the_newest():
    decided = plan(daily(5), Rules(last=2), BERLIN)

    assert decided.keep == {5: ["last 1/2", NEWEST_VERIFIED], 4: ["last 2/2"]}
    assert decided.delete == [3, 2, 1]


def test_the_newest_verified_backup_is_kept_even_when_no_rule_keeps_it():
    backups = [*daily(3, verified=True)[:1], *daily(3, verified=False)[1:]]

    decided = plan(backups, Rules(last=1), BERLIN)

    assert decided.keep == {3: ["last 1/1"], 1: [NEWEST_VERIFIED]}
    assert decided.delete == [2]


def test_a_policy_without_any_rule_keeps_everything():
    decided = plan(daily(3), Rules(), BERLIN)

    assert decided.delete == []
    assert decided.keep[2] == [NO_RULE]


# ---------------------------------------------------------------- properties


def oracle(backups: list[Snapshot], rules: Rules, tz) -> set[int]:
    """The same rules written the obvious way: group into buckets, take the newest of the N newest buckets."""
    if not any(vars(rules).values()):
        return {s.id for s in backups}
    order = sorted(backups, key=lambda s: (s.started_at, s.id))
    kept = {s.id for s in order[::-1][: rules.last]}
    keys = {
        "hourly": lambda t: (t.date(), t.hour),
        "daily": lambda t: t.date(),
        "weekly": lambda t: tuple(t.isocalendar())[:2],
        "monthly": lambda t: (t.year, t.month),
        "yearly": lambda t: t.year,
    }
    for rule, key in keys.items():
        buckets: dict = {}
        for s in order:  # oldest first: the last one written to a bucket is its newest
            buckets[key(s.started_at.astimezone(tz))] = s
        newest_buckets = sorted(buckets.values(), key=lambda s: (s.started_at, s.id), reverse=True)
        kept |= {s.id for s in newest_buckets[: getattr(rules, rule)]}
    verified = [s for s in order if s.verified]
    if verified:
        kept.add(verified[-1].id)
    return kept


@st.composite
def timelines(draw) -> list[Snapshot]:
    # Backups hours to months apart, some at the same time, across daylight-saving changes and year ends.
    gaps = draw(st.lists(st.integers(min_value=0, max_value=60 * 24 * 40), max_size=60))
    times, now = [], START
    for minutes in gaps:
        now += timedelta(minutes=minutes)
        times.append(now)
    verified = draw(st.lists(st.booleans(), min_size=len(times), max_size=len(times)))
    return [Snapshot(n, t, ok) for n, (t, ok) in enumerate(zip(draw(st.permutations(times)), verified, strict=True))]


counts = st.integers(min_value=0, max_value=6)
rule_sets = st.builds(Rules, last=counts, hourly=counts, daily=counts, weekly=counts, monthly=counts, yearly=counts)
zones = st.sampled_from([UTC, BERLIN, ZoneInfo("America/New_York"), ZoneInfo("Australia/Lord_Howe")])


@settings(max_examples=300, deadline=None)
@given(timelines(), rule_sets, zones)
def test_the_plan_keeps_exactly_what_the_oracle_keeps(backups, rules, tz):
    decided = plan(backups, rules, tz)

    assert set(decided.keep) == oracle(backups, rules, tz)
    assert set(decided.keep) | set(decided.delete) == {s.id for s in backups}
    assert not set(decided.keep) & set(decided.delete)
    assert all(decided.keep.values())  # every survivor says why


@settings(max_examples=300, deadline=None)
@given(timelines(), rule_sets, zones)
def test_the_newest_verified_backup_is_never_deleted(backups, rules, tz):
    verified = [s for s in backups if s.verified]

    decided = plan(backups, rules, tz)

    if verified:
        newest = max(verified, key=lambda s: (s.started_at, s.id))
        assert newest.id not in decided.delete
        assert NEWEST_VERIFIED in decided.keep[newest.id]


@settings(max_examples=300, deadline=None)
@given(timelines(), rule_sets, zones)
def test_planning_the_kept_backups_again_deletes_nothing(backups, rules, tz):
    kept = set(plan(backups, rules, tz).keep)

    again = plan([s for s in backups if s.id in kept], rules, tz)

    assert again.delete == []


@settings(max_examples=200, deadline=None)
@given(timelines(), rule_sets, zones)
def test_each_rule_keeps_at_most_its_count(backups, rules, tz):
    reasons = [reason for why in plan(backups, rules, tz).keep.values() for reason in why]

    for rule in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
        assert sum(reason.startswith(rule + " ") for reason in reasons) <= getattr(rules, rule)
