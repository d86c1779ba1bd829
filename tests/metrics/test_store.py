"""The store: one tick in one transaction, last values, rollups, the tick claim, the broadcast, retention."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.metrics import services, store
from apps.metrics.models import Rollup, Sample, Series
from apps.metrics.tasks import metrics_collect_task, metrics_prune_task
from tests.broadcasts import listen
from tests.metrics.store_support import START

pytestmark = pytest.mark.django_db
MINUTE, HOUR, DAY = Rollup.Resolution.MINUTE, Rollup.Resolution.HOUR, Rollup.Resolution.DAY


def test_a_tick_stores_a_sample_of_every_series_and_their_last_values():
    collected = services.collect_and_store()

    assert {"system.memory.percent", "db.query.ms", "metrics.collect.ms"} <= set(collected.values)
    samples = dict(Sample.objects.values_list("series__name", "value"))
    assert samples == pytest.approx(collected.values)
    assert set(Sample.objects.values_list("at", flat=True)) == {collected.at}
    last = {s.name: (s.last_at, s.last_value) for s in Series.objects.all()}
    assert all(last[name] == (collected.at, value) for name, value in collected.values.items())
    assert Series.objects.get(name="system.memory.percent").unit == "%"
    assert Series.objects.get(name="db.query.ms").unit == "ms"
    assert store.unit_of("system.net.recv.bytes_per_second") == "bytes/s"
    assert store.unit_of('http.requests.per_second{view="admin:index"}') == "/s"


def test_writing_a_tick_takes_the_same_statements_for_5_series_as_for_50(clock):
    def statements(count: int) -> int:
        values = {f"test.series.{n}": float(n) for n in range(count)}
        store.write(timezone.now(), values)  # creates them
        clock.shift(timedelta(seconds=5))
        with CaptureQueriesContext(connection) as queries:
            store.write(timezone.now(), values)
        return len(queries)

    assert statements(5) == statements(50) <= 5


def test_rollups_hold_count_total_min_max_last_as_computed_by_hand(clock):
    values = [3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0]
    for n, value in enumerate(values):  # every 20 s: 3 in the first minute, 3 in the second, 1 in the third
        store.write(START + timedelta(seconds=20 * n), {"test.pi": value})

    rows = Rollup.objects.filter(resolution=MINUTE)
    minutes = {r.start: (r.count, r.total, r.minimum, r.maximum, r.last) for r in rows}
    assert minutes == {
        START: (3, 8.0, 1.0, 4.0, 4.0),
        START + timedelta(minutes=1): (3, 15.5, 1.5, 9.0, 9.0),
        START + timedelta(minutes=2): (1, 2.0, 2.0, 2.0, 2.0),
    }
    (hour,) = Rollup.objects.filter(resolution=HOUR)
    assert (hour.start, hour.count, hour.total) == (START, 7, 25.5)
    assert (hour.minimum, hour.maximum, hour.last) == (1.0, 9.0, 2.0)
    assert hour.average == pytest.approx(25.5 / 7)


def test_a_tick_is_claimed_once_per_half_interval(settings, clock):
    settings.MONITORING_INTERVAL_SECONDS = 4

    assert services.claim_tick() is True
    assert services.claim_tick() is False  # the same tick delivered twice
    clock.shift(timedelta(seconds=1.9))
    assert services.claim_tick() is False
    clock.shift(timedelta(seconds=0.1))
    assert services.claim_tick() is True  # the next tick


def test_the_task_collects_once_however_many_times_it_is_delivered(settings, clock):
    settings.MONITORING_INTERVAL_SECONDS = 5

    first, second = metrics_collect_task(), metrics_collect_task()

    assert first["series"] > 10 and second == {"skipped": "another collector claimed this tick"}
    assert Sample.objects.filter(series__name="system.memory.percent").count() == 1
    clock.shift(timedelta(seconds=5))
    assert "series" in metrics_collect_task()
    assert Sample.objects.filter(series__name="system.memory.percent").count() == 2


def test_both_tasks_are_scheduled(settings):
    assert settings.CELERY_BEAT_SCHEDULE["metrics-collect"]["task"] == "apps.metrics.tasks.metrics_collect_task"
    assert settings.CELERY_BEAT_SCHEDULE["metrics-collect"]["schedule"] == settings.MONITORING_INTERVAL_SECONDS
    assert settings.CELERY_BEAT_SCHEDULE["metrics-prune"]["task"] == "apps.metrics.tasks.metrics_prune_task"


@pytest.mark.django_db(transaction=True)
def test_a_tick_is_broadcast_once_after_commit_with_every_value():
    collected = []
    ours = lambda data: data["values"].get("metrics.collect.ms") == collected[0].values["metrics.collect.ms"]  # noqa: E731

    payloads, _ = listen("metrics", lambda: collected.append(services.collect_and_store()), where=ours)

    (payload,) = json.loads(json.dumps(payloads))  # as a browser would get it
    assert payload["type"] == "sample"
    assert payload["data"]["at"] == collected[0].at.timestamp()
    assert payload["data"]["values"] == pytest.approx(collected[0].values)


def test_nothing_is_broadcast_when_the_tick_is_rolled_back(django_capture_on_commit_callbacks):
    from django.db import transaction

    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(RuntimeError), transaction.atomic():
        services.collect_and_store()
        raise RuntimeError("the surrounding work failed")

    assert callbacks == [] and not Sample.objects.exists()


def make_history() -> None:
    """Samples and rollups on both sides of each default retention (24 h, 30 d, 365 d)."""
    now = timezone.now()
    series = Series.objects.create(name="test.old")
    Sample.objects.bulk_create(
        Sample(series=series, at=now - timedelta(hours=hours), value=1) for hours in (25, 25, 25, 22, 1)
    )
    rollups = [(MINUTE, now - timedelta(days=31)), (MINUTE, now - timedelta(days=29)),
               (HOUR, now - timedelta(days=366)), (HOUR, now - timedelta(days=364)), (HOUR, now),
               (DAY, now - timedelta(days=366)), (DAY, now - timedelta(days=2))]  # fmt: skip
    Rollup.objects.bulk_create(
        Rollup(series=series, resolution=r, start=start, count=1, total=1, minimum=1, maximum=1, last=1)
        for r, start in rollups
    )


def test_prune_deletes_by_age_in_batches(clock, monkeypatch):
    make_history()
    monkeypatch.setattr(store, "PRUNE_BATCH", 2)
    clock.shift(timedelta(minutes=90))  # the sample 1 h old is now 2.5 h old: still kept

    assert services.prune(dry_run=True) == {"raw": 3, "minute": 1, "hour": 1, "day": 1}
    assert Sample.objects.count() == 5

    assert services.prune() == {"raw": 3, "minute": 1, "hour": 1, "day": 1}
    assert Sample.objects.count() == 2 and Rollup.objects.count() == 4
    assert services.prune() == {"raw": 0, "minute": 0, "hour": 0, "day": 0}


def test_retention_follows_the_settings(clock, settings):
    make_history()
    settings.METRICS_RAW_RETENTION_HOURS = 2
    settings.METRICS_MINUTE_RETENTION_DAYS = 1
    settings.METRICS_HOUR_RETENTION_DAYS = 1

    assert metrics_prune_task() == {"raw": 4, "minute": 2, "hour": 2, "day": 2}  # days go with hours


def test_a_claimed_tick_that_failed_does_not_look_collected(settings, clock):
    services.claim_tick()

    assert not Series.objects.filter(last_at__isnull=False).exists()  # the dead-man's switch still sees nothing
