"""Celery's active tasks and failures, counted in each worker process and reported as readings.

Connected to Celery's task signals from MetricsConfig.ready() (connecting costs
nothing; the reporter starts with the first task a process runs). The
collector's own task is left out of the active count: it would always be one.
"""

import threading
from typing import Any

from celery.signals import task_failure, task_postrun, task_prerun

from apps.metrics import reporting

COLLECT_TASK = "apps.metrics.tasks.metrics_collect_task"


class TaskCounts:
    def __init__(self) -> None:
        self.active = 0
        self.failed = 0
        self.lock = threading.Lock()
        self.registered = False

    def started(self, sender: Any = None, **kwargs: Any) -> None:
        if not self.registered:
            self.register()
        if getattr(sender, "name", None) != COLLECT_TASK:
            with self.lock:
                self.active += 1

    def finished(self, sender: Any = None, **kwargs: Any) -> None:
        if getattr(sender, "name", None) != COLLECT_TASK:
            with self.lock:
                self.active = max(self.active - 1, 0)

    def failure(self, sender: Any = None, **kwargs: Any) -> None:
        with self.lock:
            self.failed += 1

    def register(self) -> None:
        self.registered = True
        reporting.ensure_started("worker")
        reporting.register("celery.tasks.active", lambda: self.active, kind="gauge")
        reporting.register("celery.tasks.failed", lambda: self.failed, kind="counter")


counts = TaskCounts()


def connect() -> None:
    task_prerun.connect(counts.started, weak=False, dispatch_uid="metrics-task-started")
    task_postrun.connect(counts.finished, weak=False, dispatch_uid="metrics-task-finished")
    task_failure.connect(counts.failure, weak=False, dispatch_uid="metrics-task-failed")
