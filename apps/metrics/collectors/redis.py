"""Redis, when REDIS_URL is set: commands per second and memory used (INFO)."""

import redis
from django.conf import settings

from apps.metrics.collectors.base import Collector, Tick, Values, registry


@registry.register
class RedisCollector(Collector):
    name = "redis"

    def collect(self, tick: Tick) -> Values:
        if not settings.REDIS_URL:
            return {}
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=settings.REDIS_TIMEOUT, socket_connect_timeout=settings.REDIS_TIMEOUT
        )
        try:
            info = client.info()
        finally:
            client.close()
        return {"redis.ops.per_second": info["instantaneous_ops_per_sec"], "redis.memory.bytes": info["used_memory"]}
