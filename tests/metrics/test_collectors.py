"""The collectors read real figures (psutil, the database, the broker, Redis): shapes and ranges, not values."""

import time
from datetime import timedelta

import psutil
import pytest
from django.db import connection
from django.utils import timezone

from apps.metrics.collectors import Collector, Tick, registry, run
from apps.metrics.collectors.system import disk_paths
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.django_db


def machine_ticks() -> tuple[dict[str, float], dict[str, float]]:
    """Two ticks of the collectors that read the machine, 0.2 s apart (rates need two)."""
    memory: dict = {}
    first, _ = run(registry.collectors(reads_reports=False), Tick(timezone.now(), memory))
    time.sleep(0.2)
    second, _ = run(registry.collectors(reads_reports=False), Tick(timezone.now(), memory))
    return first, second


def test_system_figures_have_the_contract_names_and_sane_ranges():
    first, values = machine_ticks()

    for name in ("system.cpu.percent", "system.memory.percent", "system.swap.percent", "system.disk.percent"):
        assert 0 <= values[name] <= 100, name
    cores = [name for name in values if name.startswith("system.cpu.core.percent{")]
    assert sorted(cores) == sorted(f'system.cpu.core.percent{{core="{n}"}}' for n in range(psutil.cpu_count()))
    assert all(0 <= values[name] <= 100 for name in cores)
    (database_folder,) = [path for path, what in disk_paths().items() if what == "database"]
    assert values[f'system.disk.percent{{path="{database_folder}"}}'] == values["system.disk.percent"]
    for name in ("system.net.recv.bytes_per_second", "system.net.sent.bytes_per_second"):
        assert values[name] >= 0 and name not in first  # a rate needs an earlier reading
    assert "system.cpu.percent" not in first
    assert values["system.load.1"] >= 0


def test_rates_are_growth_per_second_and_a_counter_that_went_down_starts_over():
    now = timezone.now()
    memory: dict = {}
    assert Tick(now, memory).rate("bytes", 1000) is None
    assert Tick(now + timedelta(seconds=2), memory).rate("bytes", 1600) == 300
    assert Tick(now + timedelta(seconds=3), memory).rate("bytes", 10) is None  # rebooted
    assert Tick(now + timedelta(seconds=4), memory).rate("bytes", 60) == 50


def test_the_database_query_is_timed_and_postgresql_counts_its_connections():
    values = registry._collectors["database"].collect(Tick(timezone.now()))

    assert 0 < values["db.query.ms"] < 5000
    if connection.vendor == "postgresql":
        assert values["db.connections"] >= 1
    else:
        assert "db.connections" not in values


def test_the_celery_queue_depth_is_a_count():
    depth = registry._collectors["celery"].collect(Tick(timezone.now()))["celery.queue.depth"]

    assert depth >= 0 and depth == int(depth)


def test_redis_is_collected_only_when_configured(settings):
    values = registry._collectors["redis"].collect(Tick(timezone.now()))

    if REDIS_URL:
        assert values["redis.ops.per_second"] >= 0 and values["redis.memory.bytes"] > 0
    else:
        assert values == {}


class Broken(Collector):
    name = "broken"

    def collect(self, tick: Tick) -> dict[str, float]:
        raise OSError("the disk went away")


def test_a_failing_collector_is_logged_and_the_others_still_run(caplog):
    collectors = [Broken(), *registry.collectors(reads_reports=False)]

    values, timings = run(collectors, Tick(timezone.now()))

    assert "system.memory.percent" in values and "db.query.ms" in values
    assert "broken" in timings
    assert any("metrics_collector_failed" in record.getMessage() for record in caplog.records)


def test_every_kind_of_collector_is_registered():
    assert set(registry.names()) == {"cpu", "memory", "disk", "network", "processes", "readings", "http", "celery",
                                     "database", "redis"}  # fmt: skip


def test_a_configured_disk_path_that_is_gone_is_left_out_and_the_others_read(settings, tmp_path):
    settings.METRICS_DISK_PATHS = [str(tmp_path), "/no/such/folder"]

    values = registry._collectors["disk"].collect(Tick(timezone.now()))

    assert 0 <= values[f'system.disk.percent{{path="{tmp_path}"}}'] <= 100
    assert "system.disk.percent" in values and 'system.disk.percent{path="/no/such/folder"}' not in values
