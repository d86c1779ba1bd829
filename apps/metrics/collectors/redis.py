"""Redis, when REDIS_URL is set: commands per second and memory used (INFO)."""

import os

import redis
from django.conf import settings

from apps.metrics.collectors.base import Collector, Tick, Values, registry


@registry.register
class RedisCollector(Collector):
    name = "redis"

    def __init__(self) -> None:
        self._client: tuple[int, str, redis.Redis] | None = None

    def collect(self, tick: Tick) -> Values:
        if not settings.REDIS_URL:
            return {}
        info = self.client().info()
        return {"redis.ops.per_second": info["instantaneous_ops_per_sec"], "redis.memory.bytes": info["used_memory"]}

    def client(self) -> redis.Redis:
        """One client per process and URL: a connection set up per tick cost more than the INFO it carried."""
        pid, url = os.getpid(), settings.REDIS_URL
        if self._client is None or self._client[:2] != (pid, url):  # a forked child gets its own
            timeout = settings.REDIS_TIMEOUT
            self._client = (pid, url, redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout))
        return self._client[2]
