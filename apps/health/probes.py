"""The dependencies the portal cannot serve without, probed cheaply: the database, Redis, the Celery broker.

Shared by /readyz (readiness(): ok or not, and why) and the full checks
(builtin.py adds latency, usage and thresholds on top). Every probe connects
with a timeout of its own; the runner bounds it anyway.
"""

import functools
import threading
from typing import Any

import redis
from celery import current_app
from django.conf import settings
from django.db import connections

from apps.health.checks.base import Check, Outcome, critical, ok

POOL_SIZE = 4  # connections the health checks keep to Redis, per process


def readiness_checks() -> list[Check]:
    """database, and with REDIS_URL redis and broker: the checks /readyz runs."""
    timeout = float(settings.REDIS_TIMEOUT)
    checks = [Check("database", database_reachable)]
    if settings.REDIS_URL:
        checks += [Check("redis", redis_reachable, timeout=timeout), Check("broker", broker_reachable)]
    return checks


def database_reachable(alias: str = "default") -> Outcome:
    """SELECT 1 on the database."""
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return ok("reachable")


def redis_reachable() -> Outcome:
    """PING Redis."""
    if not redis_client().ping():
        return critical("Redis did not answer PING")
    return ok("reachable")


def broker_reachable() -> Outcome:
    """Connect to the Celery broker."""
    with current_app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=0)  # one attempt: the runner bounds it
    return ok("reachable")


_client_lock = threading.Lock()


def redis_client() -> redis.Redis:
    """A small Redis client pool of the health checks' own, so a busy portal pool cannot starve them."""
    with _client_lock:
        return _client(settings.REDIS_URL, float(settings.REDIS_TIMEOUT))


@functools.cache
def _client(url: str, timeout: float) -> redis.Redis:
    pool: Any = redis.BlockingConnectionPool.from_url(
        url, max_connections=POOL_SIZE, timeout=timeout, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    return redis.Redis(connection_pool=pool)
