"""The embedded worker: a Celery worker and beat running in threads of runportal's process.

Production runs `celery -A opsportal worker` and `celery -A opsportal beat` as
their own processes; this runs the very same tasks and schedule in-process so
the embedded mode needs nothing but Python. The worker uses the thread pool, so
what a task broadcasts reaches this process's in-memory channel layer.
"""

import socket
import threading

import structlog
from celery import Celery
from celery.beat import EmbeddedService
from celery.worker import state

logger = structlog.get_logger(__name__)


class EmbeddedWorker:
    def __init__(self, app: Celery, *, concurrency: int = 4, beat: bool = True) -> None:
        self.app = app
        self.concurrency = concurrency
        self.with_beat = beat
        self.worker = None
        self.beat = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.app.finalize()
        self.app.set_current()
        self.worker = self.app.WorkController(
            app=self.app,
            hostname=f"embedded@{socket.gethostname()}",
            concurrency=self.concurrency,
            pool="threads",
            loglevel="INFO",
            # No broadcast traffic needed between workers in one process.
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )
        self.thread = threading.Thread(target=self.worker.start, name="celery-worker", daemon=True)
        self.thread.start()
        if self.with_beat:
            self.beat = EmbeddedService(self.app, thread=True)
            self.beat.start()
        logger.info("embedded_worker_started", concurrency=self.concurrency, beat=self.with_beat)

    def stop(self, timeout: float = 30.0) -> None:
        """Warm shutdown: running tasks finish (up to timeout), unstarted ones stay queued."""
        if self.beat is not None:
            self.beat.stop()
        if self.thread is not None:
            state.should_stop = 0
            self.thread.join(timeout)
            state.should_stop = None
        logger.info("embedded_worker_stopped", clean=not (self.thread and self.thread.is_alive()))
