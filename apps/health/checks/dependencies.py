"""Checks of what the portal depends on: databases, cache, Redis, the channel layer, Celery.

Names: database (database:<alias> for other aliases), cache, redis (with
REDIS_URL), channel_layer, celery_broker, celery_workers, scheduler.
"""

import asyncio
import functools
import secrets
import time
from collections.abc import Iterable

from asgiref.sync import async_to_sync
from celery import Celery, current_app
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import caches
from django.db import connections
from kombu.exceptions import ChannelError

from apps.core.tasks import SCHEDULER_HEARTBEAT_KEY
from apps.health import probes
from apps.health.checks.base import Check, Outcome, Status, critical, ok, registry, unknown, warning, worst
from apps.health.checks.grading import elapsed_ms, latency_status, mib, percent_status

PING_TIMEOUT = 2.0  # seconds the workers have to answer a ping: within the check's 5 s
SCHEDULER_BEAT_SECONDS = 30  # apps.core.tasks.scheduler_heartbeat's schedule


# ---------------------------------------------------------------- databases


def database_name(alias: str) -> str:
    return "database" if alias == "default" else f"database:{alias}"


def database(alias: str) -> Outcome:
    """SELECT 1 latency; on PostgreSQL also the connections in use against max_connections."""
    connection = connections[alias]
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
        latency = elapsed_ms(started)
        details: dict = {"vendor": connection.vendor, "select_ms": round(latency, 1)}
        statuses = [latency_status(latency)]
        message = f"SELECT 1 in {latency:.0f} ms"
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT count(*) FILTER (WHERE backend_type = 'client backend'), "
                "current_setting('max_connections')::int FROM pg_stat_activity"
            )
            used, limit = cursor.fetchone()
            percent = 100 * used / limit
            statuses.append(percent_status(percent, "CONNECTIONS"))
            details.update(connections=used, max_connections=limit, connections_percent=round(percent, 1))
            message += f"; {used} of {limit} connections in use ({percent:.0f} %)"
    return Outcome(worst(statuses), message, details)


@registry.provider
def database_checks() -> Iterable[Check]:
    for alias in settings.DATABASES:
        yield Check(database_name(alias), functools.partial(database, alias), description=f"Database {alias!r}.")


# ---------------------------------------------------------------- cache


@registry.register("cache")
def cache_round_trip() -> Outcome:
    """Write, read back and delete a key in the default cache."""
    cache = caches["default"]
    key, value = f"opsportal:health:{secrets.token_hex(8)}", secrets.token_hex(8)
    started = time.perf_counter()
    cache.set(key, value, timeout=30)
    read = cache.get(key)
    cache.delete(key)
    latency = elapsed_ms(started)
    backend = type(cache).__name__
    if read != value:
        return critical(f"{backend}: a value written was not read back", backend=backend)
    return Outcome(latency_status(latency), f"{backend}: set/get/delete in {latency:.0f} ms", {"backend": backend})


# ---------------------------------------------------------------- redis


def redis_check() -> Outcome:
    """PING latency, memory used, connected clients, and this process's cache pool against REDIS_MAX_CONNECTIONS."""
    client = probes.redis_client()
    started = time.perf_counter()
    client.ping()
    latency = elapsed_ms(started)
    info = client.info()
    statuses = [latency_status(latency)]
    used, limit = info.get("used_memory", 0), info.get("maxmemory", 0)
    details = {"ping_ms": round(latency, 1), "used_memory": used, "maxmemory": limit,
               "connected_clients": info.get("connected_clients"), "maxclients": info.get("maxclients"),
               "version": info.get("redis_version")}  # fmt: skip
    parts = [f"PING in {latency:.0f} ms", f"{mib(used)} used" + (f" of {mib(limit)}" if limit else "")]
    if limit:
        statuses.append(percent_status(100 * used / limit, "MEMORY"))
    clients, max_clients = info.get("connected_clients"), info.get("maxclients")
    if clients is not None:
        parts.append(f"{clients} clients")
        if max_clients:
            statuses.append(percent_status(100 * clients / max_clients, "CONNECTIONS"))
    in_use = _cache_pool_in_use()
    if in_use is not None:
        percent = 100 * in_use / settings.REDIS_MAX_CONNECTIONS
        statuses.append(percent_status(percent, "CONNECTIONS"))
        details.update(pool_in_use=in_use, pool_max=settings.REDIS_MAX_CONNECTIONS)
        parts.append(f"pool {in_use}/{settings.REDIS_MAX_CONNECTIONS}")
    return Outcome(worst(statuses), "; ".join(parts), details)


def _cache_pool_in_use() -> int | None:
    """Connections of this process's Redis cache pool in use now (redis-py's count), or None."""
    # Django's RedisCache keeps its RedisCacheClient in _cache; other backends have none.
    client_of = getattr(getattr(caches["default"], "_cache", None), "get_client", None)
    if client_of is None:
        return None
    counts = client_of(write=True).connection_pool.get_connection_count()
    return sum(count for count, attributes in counts if attributes.get("db.client.connection.state") == "used")


# ---------------------------------------------------------------- channel layer


@registry.register("channel_layer")
def channel_layer() -> Outcome:
    """Send a message to a new channel of the channel layer and receive it back."""
    layer = get_channel_layer()
    if layer is None:
        return critical("no channel layer is configured")
    backend = type(layer).__name__
    started = time.perf_counter()
    got = async_to_sync(_round_trip)(layer, settings.HEALTH_CHECK_TIMEOUT_SECONDS)
    latency = elapsed_ms(started)
    if not got:
        return critical(f"{backend}: the message sent was not received back", backend=backend)
    return Outcome(latency_status(latency), f"{backend}: round trip in {latency:.0f} ms", {"backend": backend})


async def _round_trip(layer: object, timeout: float) -> bool:
    channel = await layer.new_channel()
    token = secrets.token_hex(8)
    await layer.send(channel, {"type": "health.ping", "token": token})
    message = await asyncio.wait_for(layer.receive(channel), timeout)
    return message.get("token") == token


# ---------------------------------------------------------------- celery


def celery_app() -> Celery:
    return current_app


@registry.register("celery_broker")
def celery_broker() -> Outcome:
    """Connect to the Celery broker and count the tasks waiting in the default queue."""
    app = celery_app()
    queue = app.conf.task_default_queue
    started = time.perf_counter()
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=0)  # one attempt: the runner bounds it
        waiting = _waiting(connection.default_channel, queue)
    latency = elapsed_ms(started)
    status = worst([latency_status(latency), _queue_status(waiting)])
    transport = app.conf.broker_url.split(":", 1)[0]
    details = {"transport": transport, "queue": queue, "waiting": waiting, "connect_ms": round(latency, 1)}
    return Outcome(status, f"{transport} broker: {waiting} tasks waiting in {queue!r}", details)


def _waiting(channel: object, queue: str) -> int:
    try:
        return channel.queue_declare(queue=queue, passive=True).message_count
    except ChannelError:  # Redis keeps no key for an empty queue: nothing is waiting
        return 0


def _queue_status(waiting: int) -> Status:
    if waiting >= settings.HEALTH_QUEUE_CRITICAL:
        return Status.CRITICAL
    return Status.WARNING if waiting >= settings.HEALTH_QUEUE_WARNING else Status.OK


@registry.register("celery_workers")
def celery_workers() -> Outcome:
    """Ping the Celery workers: how many answered within 2 s (none is critical)."""
    answers = celery_app().control.ping(timeout=PING_TIMEOUT) or []
    workers = sorted(name for answer in answers for name in answer)
    if not workers:
        return critical(f"no Celery worker answered a ping within {PING_TIMEOUT:g} s", workers=[])
    return ok(f"{len(workers)} worker{'s' if len(workers) != 1 else ''} answered", workers=workers)


@registry.register("scheduler")
def scheduler() -> Outcome:
    """How long ago Celery beat last ran its heartbeat task (every 30 s)."""
    beat = caches["default"].get(SCHEDULER_HEARTBEAT_KEY)
    if beat is None:
        where = " (a local-memory cache shows only this process's)" if not settings.REDIS_URL else ""
        return unknown(f"no scheduler heartbeat seen{where}")
    age = max(time.time() - float(beat), 0)
    details = {"last_beat_seconds_ago": round(age)}
    if age > 10 * SCHEDULER_BEAT_SECONDS:
        return critical(f"the scheduler's last heartbeat was {age:.0f} s ago", **details)
    if age > 3 * SCHEDULER_BEAT_SECONDS:
        return warning(f"the scheduler's last heartbeat was {age:.0f} s ago", **details)
    return ok(f"heartbeat {age:.0f} s ago", **details)


@registry.provider
def redis_checks() -> Iterable[Check]:
    """The Redis check exists while REDIS_URL is set."""
    if settings.REDIS_URL:
        yield Check("redis", redis_check, description="Redis: cache, channel layer and Celery broker.")
