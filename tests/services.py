"""Helpers for tests that talk to real services and real processes."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
# CACHES for a Redis that refuses connections at once (nothing listens on port 1): override_settings(CACHES=...).
REDIS_DOWN = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}


def unreachable(postgres_url: str, redis_url: str) -> list[str]:
    problems = []
    for name, url in (("DATABASE_URL", postgres_url), ("REDIS_URL", redis_url)):
        if not url:
            continue
        parts = urlsplit(url)
        default_port = 5432 if name == "DATABASE_URL" else 6379
        try:
            socket.create_connection((parts.hostname, parts.port or default_port), timeout=3).close()
        except OSError as exc:
            problems.append(f"{name} ({parts.hostname}:{parts.port or default_port}) is unreachable: {exc}")
    return problems


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A port whose connections the kernel accepts and nobody ever answers (a service that hangs).

    Closing it on the way out cuts the waiting connections off.
    """
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def subprocess_env(**overrides: str) -> dict:
    """This environment minus the portal's own settings, plus overrides."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    env.update({"PYTHONUNBUFFERED": "1", "LOG_FORMAT": "json", "DJANGO_SETTINGS_MODULE": "opsportal.settings"})
    env.update({k: v for k, v in overrides.items() if v is not None})
    return env


def manage(*args: str, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


class Process:
    """A real child process (runportal, a Celery worker) with its output in a file."""

    def __init__(self, args: list[str], *, env: dict, log: Path) -> None:
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.tree: set[int] = {self.popen.pid}
        self.orphans: list[int] = []

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def remember_tree(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            self.tree |= {child.pid for child in psutil.Process(self.popen.pid).children(recursive=True)}

    def wait_for_http(self, url: str, timeout: float = 60) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"process exited with {self.popen.returncode}:\n{self.output}")
            try:
                return httpx.get(url, timeout=2)
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"{url} did not answer within {timeout}s:\n{self.output}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.remember_tree()
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        finally:
            self.orphans = self.leftovers()  # what outlived the process: should be nothing
            self.kill_leftovers()
            self._log.close()

    def leftovers(self) -> list[int]:
        alive = []
        for pid in self.tree:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        return alive

    def kill_leftovers(self) -> None:
        for pid in self.leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def broker_in_memory() -> Iterator[None]:
    """Point the Celery app at an in-memory broker and result store for the duration (the transport too)."""
    from opsportal.celery import app

    keys = ("broker_url", "broker_transport", "result_backend", "broker_transport_options")
    saved = {key: app.conf[key] for key in keys}
    app.conf.update(
        broker_url="memory://", broker_transport=None, result_backend="cache+memory://", broker_transport_options={}
    )
    # Connections made before (a task queued by an earlier test) would still go to the old broker.
    _forget_connections(app)
    try:
        yield
    finally:
        app.conf.update(saved)


def _forget_connections(app) -> None:
    """Drop the app's cached connection and producer pools, so the next use connects to the configured broker."""
    app._pool = None
    app.amqp._producer_pool = None
