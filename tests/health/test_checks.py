"""The built-in checks against the real components of this machine, and their thresholds from settings."""

import time
from pathlib import Path

import pytest
from celery import Celery
from django.core.cache import cache
from django.db import connection

from apps.core.tasks import SCHEDULER_HEARTBEAT_KEY
from apps.health import services
from apps.health.checks import Status, dependencies, system
from opsportal.celery import app

pytestmark = pytest.mark.django_db


def test_the_database_check_times_select_1(settings):
    outcome = dependencies.database("default")

    assert outcome.status == Status.OK and outcome.message.startswith("SELECT 1 in ")
    assert outcome.details["vendor"] == connection.vendor

    settings.HEALTH_LATENCY_WARNING_MS = 0  # any latency is at least 0 ms
    assert dependencies.database("default").status == Status.WARNING
    settings.HEALTH_LATENCY_CRITICAL_MS = 0
    assert dependencies.database("default").status == Status.CRITICAL


@pytest.mark.postgres
def test_on_postgresql_the_database_check_counts_connections_against_max_connections(settings):
    outcome = dependencies.database("default")

    assert 1 <= outcome.details["connections"] <= outcome.details["max_connections"]
    assert f"of {outcome.details['max_connections']} connections in use" in outcome.message

    settings.HEALTH_CONNECTIONS_WARNING_PERCENT = settings.HEALTH_CONNECTIONS_CRITICAL_PERCENT = 0
    assert dependencies.database("default").status == Status.CRITICAL


def test_there_is_a_database_check_per_alias(settings, monkeypatch):
    monkeypatch.setitem(settings.DATABASES, "replica", settings.DATABASES["default"])

    assert {"database", "database:replica"} <= set(services.check_names())


def test_the_cache_check_writes_and_reads_back():
    outcome = dependencies.cache_round_trip()

    assert outcome.status == Status.OK and "set/get/delete in" in outcome.message


def test_the_channel_layer_check_makes_a_round_trip():
    outcome = dependencies.channel_layer()

    assert outcome.status == Status.OK and "round trip in" in outcome.message


def test_the_broker_check_counts_the_tasks_waiting(settings):
    with app.connection_for_write() as connection:  # the in-memory broker is the test process's: start empty
        connection.default_channel.queue_purge("celery")
    assert dependencies.celery_broker().details["waiting"] == 0
    with app.connection_for_write() as connection:
        producer = connection.Producer()
        for n in range(3):
            producer.publish({"n": n}, routing_key="celery", declare=[app.amqp.queues["celery"]])

    outcome = dependencies.celery_broker()
    assert (outcome.status, outcome.details["waiting"]) == (Status.OK, 3)
    assert outcome.message == "memory broker: 3 tasks waiting in 'celery'"

    settings.HEALTH_QUEUE_WARNING = 3
    assert dependencies.celery_broker().status == Status.WARNING
    settings.HEALTH_QUEUE_CRITICAL = 3
    assert dependencies.celery_broker().status == Status.CRITICAL
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge("celery")


def test_the_workers_check_is_critical_when_no_worker_answers(monkeypatch, tmp_path):
    monkeypatch.setattr(dependencies, "PING_TIMEOUT", 0.2)
    for folder in ("queue", "control"):
        (tmp_path / folder).mkdir()
    options = {"data_folder_in": str(tmp_path / "queue"), "data_folder_out": str(tmp_path / "queue"),
               "control_folder": str(tmp_path / "control")}  # fmt: skip
    # Not the current app: shared tasks queued by later tests in this process would go to this broker.
    nobody = Celery("nobody", broker="filesystem://", broker_transport_options=options, set_as_current=False)
    monkeypatch.setattr(dependencies, "celery_app", lambda: nobody)  # a broker no worker listens to

    outcome = dependencies.celery_workers()

    assert (outcome.status, outcome.message) == (Status.CRITICAL, "no Celery worker answered a ping within 0.2 s")


def test_the_workers_check_counts_the_workers_that_answer(celery_worker, monkeypatch):
    monkeypatch.setattr(dependencies, "PING_TIMEOUT", 0.5)  # a ping waits this long for every answer
    deadline = time.monotonic() + 10  # the embedded worker may still be starting
    while (outcome := dependencies.celery_workers()).status != Status.OK and time.monotonic() < deadline:
        pass

    assert outcome.status == Status.OK and outcome.message == "1 worker answered"
    assert outcome.details["workers"][0].startswith("embedded@")


@pytest.mark.xdist_group("health_scheduler_key")  # one heartbeat key in a Redis cache shared by the test processes
@pytest.mark.parametrize(
    ("seconds_ago", "status"),
    [(5, Status.OK), (120, Status.WARNING), (900, Status.CRITICAL)],
)
def test_the_scheduler_check_reads_the_age_of_beats_heartbeat(seconds_ago, status):
    cache.set(SCHEDULER_HEARTBEAT_KEY, time.time() - seconds_ago)
    try:
        assert dependencies.scheduler().status == status
    finally:
        cache.delete(SCHEDULER_HEARTBEAT_KEY)


@pytest.mark.xdist_group("health_scheduler_key")
def test_without_a_heartbeat_the_scheduler_is_unknown():
    cache.delete(SCHEDULER_HEARTBEAT_KEY)

    assert dependencies.scheduler().status == Status.UNKNOWN


def test_the_disk_check_grades_each_path_and_reports_the_worst(settings, tmp_path):
    settings.HEALTH_DISK_PATHS = [str(tmp_path)]
    outcome = system.disk()
    used = outcome.details["paths"][str(tmp_path)]["percent"]
    assert outcome.message.startswith(f"{tmp_path} {used:.0f} % used")

    settings.HEALTH_DISK_WARNING_PERCENT = max(int(used) - 1, 0)
    settings.HEALTH_DISK_CRITICAL_PERCENT = 100
    assert system.disk().status == Status.WARNING
    settings.HEALTH_DISK_CRITICAL_PERCENT = max(int(used) - 1, 0)
    assert system.disk().status == Status.CRITICAL

    settings.HEALTH_DISK_WARNING_PERCENT = settings.HEALTH_DISK_CRITICAL_PERCENT = 100
    missing = tmp_path / "gone"
    settings.HEALTH_DISK_PATHS = [str(tmp_path), str(missing)]
    outcome = system.disk()
    assert outcome.status == Status.CRITICAL
    assert outcome.message == f"{missing}: No such file or directory (and 1 more path)"


def test_by_default_the_disk_check_watches_the_databases_folder(settings):
    settings.HEALTH_DISK_PATHS = []
    database = settings.DATABASES["default"]
    expected = Path(database["NAME"]).parent if database["ENGINE"].endswith("sqlite3") else settings.VAR_DIR

    assert system.disk_paths()[0] == str(expected)


def test_the_memory_check_grades_memory_in_use(settings):
    assert system.memory().status in (Status.OK, Status.WARNING, Status.CRITICAL)
    used = system.memory().details["percent"]

    settings.HEALTH_MEMORY_WARNING_PERCENT, settings.HEALTH_MEMORY_CRITICAL_PERCENT = 100, 100
    assert system.memory().status == Status.OK
    settings.HEALTH_MEMORY_WARNING_PERCENT = max(int(used) - 1, 0)
    assert system.memory().status == Status.WARNING
    settings.HEALTH_MEMORY_CRITICAL_PERCENT = max(int(used) - 1, 0)
    assert system.memory().status == Status.CRITICAL


def test_the_cpu_check_grades_the_load_per_cpu(settings):
    settings.HEALTH_LOAD_WARNING_PER_CPU, settings.HEALTH_LOAD_CRITICAL_PER_CPU = 1000, 1000
    outcome = system.cpu()
    assert outcome.status == Status.OK and outcome.details["cpus"] >= 1

    settings.HEALTH_LOAD_WARNING_PER_CPU = 0
    assert system.cpu().status == Status.WARNING
    settings.HEALTH_LOAD_CRITICAL_PER_CPU = 0
    assert system.cpu().status == Status.CRITICAL


def test_the_process_check_reports_rss_files_and_threads(settings):
    outcome = system.process()

    assert outcome.status == Status.OK
    assert outcome.details["threads"] >= 1 and outcome.details["open_files"] >= 3
    settings.HEALTH_PROCESS_RSS_WARNING_MB = 1
    assert system.process().status == Status.WARNING
    settings.HEALTH_PROCESS_RSS_CRITICAL_MB = 1
    assert system.process().status == Status.CRITICAL


def test_the_migrations_check_warns_of_unapplied_migrations():
    assert system.migrations().status == Status.OK

    with connection.cursor() as cursor:  # undone when the test's transaction rolls back
        cursor.execute("SELECT MAX(name) FROM django_migrations WHERE app = 'health'")
        (latest,) = cursor.fetchone()
        cursor.execute("DELETE FROM django_migrations WHERE app = 'health' AND name = %s", [latest])
    outcome = system.migrations()

    assert outcome.status == Status.WARNING
    assert outcome.message == f"1 unapplied migration: health.{latest}"


def test_every_built_in_check_runs_through_the_runner(settings, tmp_path, monkeypatch):
    monkeypatch.setattr(dependencies, "PING_TIMEOUT", 0.2)
    settings.HEALTH_DISK_PATHS = [str(tmp_path)]

    results = {result.name: result for result in services.run_checks(timeout=3)}

    assert set(results) >= {"cache", "celery_broker", "celery_workers", "channel_layer", "cpu", "database",
                             "disk", "memory", "migrations", "process", "scheduler"}  # fmt: skip
    assert results["database"].status == results["cache"].status == results["channel_layer"].status == Status.OK
    assert all(result.message for result in results.values())


@pytest.mark.redis
def test_the_redis_check_reports_ping_memory_clients_and_the_cache_pool(settings):
    cache.set("warm-the-pool", 1)  # the cache's pool exists once the cache has been used

    outcome = dependencies.redis_check()

    assert outcome.status == Status.OK and outcome.message.startswith("PING in ")
    assert outcome.details["connected_clients"] >= 1 and outcome.details["used_memory"] > 0
    assert outcome.details["pool_max"] == settings.REDIS_MAX_CONNECTIONS
    assert 0 <= outcome.details["pool_in_use"] <= settings.REDIS_MAX_CONNECTIONS
    assert f"pool {outcome.details['pool_in_use']}/{settings.REDIS_MAX_CONNECTIONS}" in outcome.message

    settings.HEALTH_CONNECTIONS_WARNING_PERCENT = settings.HEALTH_CONNECTIONS_CRITICAL_PERCENT = 0
    assert dependencies.redis_check().status == Status.CRITICAL  # clients and pool both count


def test_without_redis_url_there_is_no_redis_check(settings):
    settings.REDIS_URL = ""

    assert "redis" not in services.check_names()
