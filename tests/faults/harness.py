"""The portal as production runs it, for the alert fault tests and the alert benchmarks.

A scratch PostgreSQL database, a Redis database of its own, `celery -A opsportal
worker` and `celery -A opsportal beat` as child processes that can be SIGKILLed
and started again, and a webhook receiver on loopback that records what arrives.

This module does not import Django: the process that uses it only orchestrates.
The portal's code runs in the portal's own processes (the worker, beat, and
`manage.py shell -c` running tests/faults/producers.py), configured by the
environment alone, as in production.

The receiver is tests/receiver.py's: down() and up() take it off its port and
back, fail_first() scripts a path's answers, keys() counts the idempotency keys
(webhook-id) that arrived.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

from tests.receiver import Receiver
from tests.receiver import Request as Received
from tests.services import ROOT, subprocess_env

# Receiver and Received are here for scenarios.py and bench/, which take them from this module.
__all__ = [
    "CONCURRENCY",
    "FAST",
    "HealTimeoutError",
    "Portal",
    "Received",
    "Receiver",
    "hard_timeout",
    "portal",
    "wait_until",
]

# Short beats for the portal's processes, so that a fault heals in seconds, not minutes. The
# lease is the settings' minimum (10 s, at least twice the delivery timeout): it is how long a
# notification held by a killed worker waits before the sweeper hands it to another.
FAST = {"ALERTS_TICK_SECONDS": "1", "ALERTS_LEASE_SECONDS": "10", "ALERTS_DELIVERY_TIMEOUT_SECONDS": "2"}
CONCURRENCY = 2  # prefork children per worker: one per core of the machines this runs on
CELERY = [sys.executable, "-m", "celery", "-A", "opsportal"]


class HealTimeoutError(AssertionError):
    """A wait ran past its deadline: the fault was not healed in time (or the harness hung)."""


def wait_until(condition: Callable[[], Any], timeout: float, what: str, poll: float = 0.05) -> Any:
    """condition()'s first true value, polled until timeout seconds; Timeout (naming `what`) after that."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise HealTimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(poll)


@contextlib.contextmanager
def hard_timeout(seconds: float, what: str) -> Iterator[None]:
    """Interrupt the main thread after `seconds` wherever it is blocked, so that a hang fails instead of stalling."""

    def expire(signum: int, frame: object) -> None:
        raise HealTimeoutError(f"{what}: still running after {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------- the portal


class Portal:
    """One production-mode installation: its environment, a beat and a worker that can be killed and restarted."""

    def __init__(self, database_url: str, redis_url: str, folder: Path, **settings: str) -> None:
        self.database_url = database_url
        self.folder = folder
        (folder / "var").mkdir(parents=True, exist_ok=True)
        self.env = subprocess_env(
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            SECRET_KEY="f" * 60,
            OPSPORTAL_VAR_DIR=str(folder / "var"),
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
            LOG_LEVEL="INFO",
            **{**FAST, **settings},
        )
        self.worker: subprocess.Popen | None = None
        self.beat: subprocess.Popen | None = None
        self.worker_starts = 0
        self._db: psycopg.Connection | None = None

    # -- processes

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen:
        with open(self.folder / log, "ab") as output:
            # A session of its own: killpg() then reaches the process and every child it forked.
            return subprocess.Popen(
                args, cwd=ROOT, env=self.env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )

    def start_worker(self, *, concurrency: int = CONCURRENCY, wait: bool = False) -> None:
        """`celery -A opsportal worker` (prefork) with acks_late and the portal's settings."""
        self.worker_starts += 1
        options = ["--pool", "prefork", "--concurrency", str(concurrency), "--loglevel", "INFO"]
        options += ["--without-mingle", "--without-gossip", "--hostname", f"faults{self.worker_starts}@%h"]
        self.worker = self._spawn([*CELERY, "worker", *options], "worker.log")
        if wait:
            self.wait_for_worker()

    def wait_for_worker(self, timeout: float = 60) -> None:
        """Until the worker says it is ready (its consumer is connected), or fail."""
        marker = f"faults{self.worker_starts}@"

        def ready() -> bool:
            if self.worker.poll() is not None:
                raise AssertionError(f"the worker exited with {self.worker.returncode}:\n{self.log('worker.log')}")
            return any(marker in line and "ready" in line for line in self.log("worker.log").splitlines())

        wait_until(ready, timeout, "the Celery worker to start", poll=0.1)

    def stop_worker(self) -> None:
        """A warm stop (SIGTERM): the worker finishes what it is running and hands back what it had reserved."""
        self.worker.send_signal(signal.SIGTERM)
        self.worker.wait(60)

    def kill_worker(self) -> None:
        """SIGKILL the worker and all its children at once, as the kernel's OOM killer or a lost node would."""
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(30)

    def start_beat(self) -> None:
        """`celery -A opsportal beat`: the alerts tick (services.tick, delivery.sweep) every ALERTS_TICK_SECONDS."""
        schedule = str(self.folder / "var" / "beat-schedule")
        self.beat = self._spawn([*CELERY, "beat", "--loglevel", "INFO", "--schedule", schedule], "beat.log")

    def stop(self) -> None:
        """A warm stop (SIGTERM) for whatever runs, then SIGKILL for anything of theirs left after 30 s."""
        for process in (self.worker, self.beat):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (self.worker, self.beat):
            if process is None:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(30)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        self.worker = self.beat = None

    def log(self, name: str) -> str:
        path = self.folder / name
        return path.read_text(errors="replace") if path.exists() else ""

    # -- code in the portal

    def shell(self, code: str, timeout: float = 3600) -> Any:
        """Run code in `manage.py shell -c` (json imported); its last line of output, read as JSON."""
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", f"import json; {code}"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0 or not result.stdout.strip():
            raise AssertionError(f"manage.py shell failed ({result.returncode}):\n{result.stderr[-3000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def call(self, function: str, timeout: float = 600, **kwargs: Any) -> Any:
        """producers.<function>(**kwargs) in `manage.py shell -c`; what it returned (through JSON)."""
        return self.shell(_calling(function, kwargs), timeout)

    def start_call(self, function: str, **kwargs: Any) -> subprocess.Popen:
        """producers.<function>(**kwargs) in a `manage.py shell -c` that runs while the caller goes on."""
        args = [sys.executable, "manage.py", "shell", "-c", f"import json; {_calling(function, kwargs)}"]
        with open(self.folder / "producers.log", "ab") as output:
            return subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=output, stderr=subprocess.STDOUT)

    def migrate(self) -> None:
        result = subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            raise AssertionError(f"migrate failed:\n{result.stderr[-3000:]}")

    # -- the database, read directly (cheap enough to poll)

    def query(self, sql: str, *params: Any) -> list[tuple]:
        if self._db is None:
            self._db = psycopg.connect(self.database_url, autocommit=True)
        return self._db.execute(sql, params).fetchall()

    def statuses(self, channel: str) -> Counter:
        """How many of the channel's notifications are pending, delivered, dead."""
        rows = self.query(
            "SELECT n.status, count(*) FROM alerts_notification n JOIN alerts_notificationchannel c"
            " ON c.id = n.channel_id WHERE c.name = %s GROUP BY n.status",
            channel,
        )
        return Counter(dict(rows))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _calling(function: str, kwargs: dict) -> str:
    arguments = json.dumps(kwargs)
    return f"from tests.faults import producers; print(json.dumps(producers.{function}(**json.loads({arguments!r}))))"


@contextlib.contextmanager
def portal(postgres_url: str, redis_url: str, redis_db: int, folder: Path, **settings: str) -> Iterator[Portal]:
    """A migrated portal on a new database next to postgres_url and on Redis database redis_db (emptied
    before and after); its processes are stopped and the database dropped afterwards."""
    name = f"opsportal_faults_{uuid.uuid4().hex[:10]}"
    redis_url = urlunsplit(urlsplit(redis_url)._replace(path=f"/{redis_db}"))
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    flush = redis.Redis.from_url(redis_url)
    flush.flushdb()
    installed = Portal(urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}")), redis_url, folder, **settings)
    try:
        installed.migrate()
        yield installed
    finally:
        installed.stop()
        installed.close()
        flush.flushdb()
        flush.close()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
