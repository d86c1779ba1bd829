"""The redis.Redis client behind Django's Redis cache, for the few hot paths that talk to it directly.

Django's Redis cache builds a new redis.Redis (a dict of 170 reply callbacks) for
every operation: for a one-key read or a counter, that was half of its cost. One
client per backend (each thread has its own backend), on the backend's pool.
"""

import functools

from django.core.cache import BaseCache
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis import Redis


def redis_of(backend: BaseCache) -> Redis | None:
    """The backend's Redis client, or None when the backend is not Redis (the embedded local-memory cache)."""
    return _client(backend._cache) if isinstance(backend, RedisCache) else None


@functools.cache
def _client(client: RedisCacheClient) -> Redis:
    return client.get_client(write=True)
