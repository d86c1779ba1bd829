"""Per-process reporting: readings, two web processes merged by the one collector, silent processes dropping out."""

import os
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.metrics import histogram, reporting, services
from apps.metrics.models import ProcessReport
from apps.metrics.traffic import Traffic
from tests.metrics.store_support import serve

pytestmark = pytest.mark.django_db
INTERVAL = 5


@pytest.fixture(autouse=True)
def interval(settings) -> None:
    settings.MONITORING_INTERVAL_SECONDS = INTERVAL


@pytest.fixture
def readings():
    """Registered readings, removed after the test."""
    names = []

    def register(name: str, read, kind: str) -> None:
        names.append(name)
        reporting.register(name, read, kind=kind)

    yield register
    for name in names:
        reporting.unregister(name)


def web(pid: int) -> reporting.Reporter:
    return reporting.Reporter(role="web", pid=pid, source=Traffic())


def later(clock, seconds: float = INTERVAL) -> None:
    clock.shift(timedelta(seconds=seconds))


def test_register_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="gauge, counter"):
        reporting.register("dashboard.clients", lambda: 1, kind="level")


def test_a_report_carries_readings_usage_and_traffic_and_a_failing_reading_is_left_out(readings):
    readings("test.clients", lambda: 7, "gauge")
    readings("test.frames", lambda: 1 / 0, "counter")
    reporter = web(os.getpid())
    serve(reporter.traffic, "admin:index", [12.0])

    payload = reporter.payload()

    assert payload["gauges"]["test.clients"] == 7 and "test.frames" not in payload["counters"]
    assert payload["process"]["rss.bytes"] > 1_000_000 and payload["process"]["threads"] >= 1
    assert payload["process"]["cpu.percent"] >= 0
    requests, client_errors, server_errors, buckets = payload["http"]["admin:index"]
    assert (requests, client_errors, server_errors) == (1, 0, 0)
    assert buckets == [histogram.bucket(12.0), 1]


def test_two_web_processes_are_merged_rates_summed_and_percentiles_from_the_merged_histograms(clock):
    fast, slow = web(101), web(102)
    fast.report(), slow.report()
    services.collect_and_store()  # consumes what came before
    later(clock)
    # 95 fast requests in one process, 5 slow ones and 5 errors in the other.
    serve(fast.traffic, "admin:index", [10.0] * 95)
    serve(slow.traffic, "admin:index", [800.0] * 5)
    serve(slow.traffic, "hooks:event", [20.0] * 4, status=503)
    serve(slow.traffic, "unmatched", [1.0], status=404)
    fast.report(), slow.report()

    values = services.collect_and_store().values

    assert values["http.requests.per_second"] == pytest.approx(105 / INTERVAL)
    assert values['http.requests.per_second{view="admin:index"}'] == pytest.approx(100 / INTERVAL)
    assert values["http.5xx.percent"] == pytest.approx(100 * 4 / 105)
    assert values["http.4xx.percent"] == pytest.approx(100 * 1 / 105)
    merged = histogram.merge([{histogram.bucket(10.0): 95}, {histogram.bucket(800.0): 5}])
    p95, p99 = histogram.percentile(merged, 0.95), histogram.percentile(merged, 0.99)
    assert values['http.latency.p95.ms{view="admin:index"}'] == p95 == pytest.approx(10.0, rel=0.05)
    assert values['http.latency.p99.ms{view="admin:index"}'] == p99 == pytest.approx(800.0, rel=0.05)
    # Not the average of the processes' p95s (10 and 800 ms), which is no percentile of anything.
    assert values['http.latency.p95.ms{view="admin:index"}'] < 100
    assert values["http.latency.p50.ms"] == pytest.approx(10.0, rel=0.05)
    assert values['process.rss.bytes{process="web-101"}'] > 0 and 'process.threads{process="web-102"}' in values


def test_requests_are_counted_once_however_the_collections_fall(clock):
    process = web(201)
    process.report()
    services.collect_and_store()
    later(clock)
    serve(process.traffic, "admin:index", [5.0] * 10)
    process.report()
    first = services.collect_and_store().values
    later(clock, 1)  # collected again before the process reported again: nothing new, the rate stands
    again = services.collect_and_store().values
    later(clock, 4)
    process.report()
    quiet = services.collect_and_store().values

    assert first["http.requests.per_second"] == pytest.approx(10 / INTERVAL)
    assert again["http.requests.per_second"] == pytest.approx(10 / INTERVAL)
    assert 'http.latency.p95.ms{view="admin:index"}' not in again  # no new latencies in that tick
    assert quiet["http.requests.per_second"] == 0 and "http.latency.p95.ms" not in quiet


def test_gauges_are_summed_and_counters_become_per_second_rates(clock, readings):
    frames = {"sent": 10.0}
    readings("test.clients", lambda: 3, "gauge")
    readings("test.frames.sent", lambda: frames["sent"], "counter")
    first, second = web(301), web(302)  # both read the same registered readings: two processes with 3 clients
    first.report(), second.report()
    services.collect_and_store()
    later(clock)
    frames["sent"] = 40.0
    first.report(), second.report()

    values = services.collect_and_store().values

    assert values["test.clients"] == 6
    assert values["test.frames.sent.per_second"] == pytest.approx(2 * 30 / INTERVAL)


def test_a_process_silent_for_3_intervals_drops_out(clock):
    gone, alive = web(401), web(402)
    gone.report(), alive.report()
    later(clock, 2 * INTERVAL)
    alive.report()
    assert 'process.rss.bytes{process="web-401"}' in services.collect_and_store().values

    later(clock, INTERVAL + 1)  # 3 intervals and a second since web-401 last reported
    alive.report()
    values = services.collect_and_store().values

    assert 'process.rss.bytes{process="web-401"}' not in values
    assert 'process.rss.bytes{process="web-402"}' in values
    assert list(ProcessReport.objects.values_list("pid", flat=True)) == [402]


def test_the_reporter_thread_starts_lazily_and_never_while_reporting_in_background_is_off(monkeypatch):
    monkeypatch.setattr(reporting, "_started", False)

    reporting.ensure_started("web")

    assert reporting._started is True
    assert "opsportal-metrics-reporter" not in [thread.name for thread in threading.enumerate()]


def test_a_forked_child_starts_afresh():
    from apps.metrics.traffic import traffic

    traffic.record("admin:index", 200, 0.01)
    reporting.ensure_started("web")
    child = os.fork()
    if child == 0:  # the child: nothing started, no inherited requests
        os._exit(0 if reporting._started is False and traffic.snapshot() == {} else 1)
    _, status = os.waitpid(child, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert traffic.snapshot()["admin:index"][0] >= 1  # the parent keeps its own


def test_a_report_is_one_row_per_process_updated_in_place(clock):
    process = web(501)
    process.report()
    later(clock)
    process.report()

    (row,) = ProcessReport.objects.all()
    assert (row.role, row.pid, row.at) == ("web", 501, timezone.now())
