"""Epochs: a value in the shared cache that changes after every committed change of some rows.

A process that keeps something it built from those rows (a token it looked up, a
page of the API it wrote out) keeps it with the epoch it read before building it,
and reuses it only while the epoch still has that value. A writer sets a new
value once its transaction commits, before it answers its caller: so no process
reuses anything older than a commit whose writer has answered. A new value is
random rather than counted, so that a value lost with Redis (a restart, a flush)
never comes back to match an old one. When the cache cannot be read, an epoch
reads as None and nothing is reused.
"""

import secrets

import structlog
from django.core.cache import caches
from django.db import transaction
from redis import RedisError

from apps.core.cache import redis_of

logger = structlog.get_logger(__name__)


class Epoch:
    def __init__(self, key: str) -> None:
        self.key = key

    def move_on_commit(self, **_signal: object) -> None:
        """A new value once the current transaction commits (at once outside one); also a signal receiver."""
        transaction.on_commit(self.move)

    def move(self) -> None:
        try:
            caches["default"].set(self.key, secrets.randbits(62), timeout=None)
        except (RedisError, OSError):  # the others stop reusing anyway while they cannot read it
            logger.warning("epoch_not_moved", epoch=self.key, exc_info=True)

    def read(self) -> int | None:
        """The value now (0 before the first move); None when the cache cannot be read."""
        backend = caches["default"]
        try:
            redis = redis_of(backend)
            if redis is None:
                return backend.get(self.key, 0)
            value = redis.get(backend.make_and_validate_key(self.key))  # one GET: Django's get() costs more
            return int(value) if value is not None else 0
        except (RedisError, OSError, ValueError):
            logger.warning("epoch_unreadable", epoch=self.key, exc_info=True)
            return None
