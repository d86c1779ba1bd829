"""Per-process readings: what each web or worker process measures of itself, reported every interval.

Any process registers readings with register(name, read, kind=...): a gauge is
a level (dashboard clients), a counter only grows (frames sent). A reporter
thread in each process writes, every MONITORING_INTERVAL_SECONDS, one
ProcessReport row: the readings, this process's RSS, CPU and threads, and the
HTTP middleware's cumulative traffic. The one collector sums the live reports
(apps.metrics.reports): gauges as they are, counters as per-second rates.

The thread starts lazily (first request, first registration, first Celery task),
never in AppConfig.ready(), so `manage.py migrate` and friends start nothing; a
forked child (gunicorn, Celery prefork) starts its own, with its own key.
"""

import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import psutil
import structlog
from django.conf import settings
from django.db import connections
from django.utils import timezone

from apps.metrics.models import ProcessReport
from apps.metrics.traffic import Traffic, traffic

logger = structlog.get_logger(__name__)

Kind = Literal["gauge", "counter"]
KINDS = ("gauge", "counter")


def register(name: str, read: Callable[[], float], *, kind: Kind) -> None:
    """Report read() under `name` from this process every interval, from now on (the same name replaces).

    gauge: the collector stores the sum over live processes under `name`;
    counter (cumulative, never decreasing within a process): the collector stores
    the summed per-second rate under `name + ".per_second"`. read() runs in the
    reporter thread: it must be cheap and thread-safe; one that raises is logged
    and left out of that report.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    with _lock:
        _readings[name] = (read, kind)
    ensure_started()


def unregister(name: str) -> None:
    """Stop reporting `name` (nothing happens when it was not registered)."""
    with _lock:
        _readings.pop(name, None)


class Reporter:
    """Writes one process's report. The thread calls report() every interval; tests call it directly."""

    def __init__(self, *, role: str, pid: int | None = None, source: Traffic = traffic) -> None:
        self._role = role
        self.pid = pid or os.getpid()
        self.key = f"{socket.gethostname()[:50]}:{self.pid}:{uuid.uuid4().hex[:12]}"
        self.started_at = timezone.now()
        self.traffic = source
        self._process = psutil.Process(os.getpid())
        self._process.cpu_percent(None)  # starts the CPU measurement: the next call returns the share since now

    @property
    def role(self) -> str:
        """The process label's role: web in a process that serves HTTP, whoever started the reporter.

        (The embedded mode runs tasks in its web process, and a task may start the reporter first.)
        """
        return "web" if _serves_http else self._role

    def payload(self) -> dict[str, Any]:
        """What this process reports now: its readings, its own usage, its HTTP traffic (all JSON-ready)."""
        gauges, counters = {}, {}
        with _lock:
            readings = list(_readings.items())
        for name, (read, kind) in readings:
            try:
                value = float(read())
            except Exception:
                logger.warning("metrics_reading_failed", reading=name, exc_info=True)
                continue
            (gauges if kind == "gauge" else counters)[name] = value
        with self._process.oneshot():
            usage = {
                "rss.bytes": float(self._process.memory_info().rss),
                "cpu.percent": self._process.cpu_percent(None),
                "threads": float(self._process.num_threads()),
            }
        return {"gauges": gauges, "counters": counters, "process": usage, "http": self.traffic.snapshot()}

    def report(self, now: datetime | None = None) -> None:
        """Write this process's report (one UPDATE; an INSERT the first time)."""
        now = now or timezone.now()
        payload = self.payload()
        if not ProcessReport.objects.filter(key=self.key).update(at=now, payload=payload, role=self.role):
            ProcessReport.objects.create(
                key=self.key, role=self.role, pid=self.pid, started_at=self.started_at, at=now, payload=payload
            )

    def run_forever(self) -> None:
        """The thread's loop: report, sleep an interval; a failure (database down) is logged and retried."""
        while True:
            try:
                self.report()
            except Exception:
                logger.warning("metrics_report_failed", key=self.key, exc_info=True)
            finally:
                connections.close_all()  # this thread's only: back to the pool, or not left open between reports
            time.sleep(settings.MONITORING_INTERVAL_SECONDS)


def ensure_started(role: str | None = None) -> None:
    """Start this process's reporter thread unless it runs (cheap: a flag test once started).

    role: "web" (the middleware), "worker" (Celery tasks); guessed from the
    command line when not given. With METRICS_REPORT_IN_BACKGROUND off (the test
    suite), nothing starts: tests run a Reporter's report() themselves.
    """
    global _started
    if _started:
        return
    with _lock:
        if _started:
            return
        _started = True
        if not settings.METRICS_REPORT_IN_BACKGROUND:
            return
        reporter = Reporter(role=role or _guess_role())
        threading.Thread(target=reporter.run_forever, name="opsportal-metrics-reporter", daemon=True).start()


def serves_http() -> None:
    """Say that this process serves HTTP (the middleware, when Django builds its handler): its label is web-<pid>."""
    global _serves_http
    _serves_http = True


def _guess_role() -> str:
    # `celery -A opsportal worker` and `python -m celery ...` (argv[0] .../celery/__main__.py) alike.
    return "worker" if "celery" in sys.argv[0] else "web"


def _forget_parent() -> None:
    """In a forked child: the parent's thread did not come along, nor do its requests belong to the child.

    Registered with os.register_at_fork rather than comparing os.getpid() on every
    request (a system call): gunicorn, Celery prefork and multiprocessing all fork
    through os.fork, which runs it. The child's reporter has its own pid and key.
    """
    global _started, _lock
    _started = False
    _lock = threading.Lock()  # the parent may have held it at the fork
    traffic.reset()


_readings: dict[str, tuple[Callable[[], float], Kind]] = {}
_lock = threading.Lock()
_started = False
_serves_http = False
os.register_at_fork(after_in_child=_forget_parent)
