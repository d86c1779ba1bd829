"""Epochs: a value in the shared cache that changes after every committed change of some rows.

A process that keeps something it built from those rows (a token it looked up, a
page of the API it wrote out) keeps it with the epoch it read before building it,
and reuses it only while the epoch still has that value. A writer sets a new
value once its transaction commits, before it answers its caller: so no process
reuses anything older than a commit whose writer has answered. A new value is
random rather than counted, so that a value lost with Redis (a restart, a flush)
never comes back to match an old one. When the cache cannot be read, an epoch
reads as None and nothing is reused.

Within a request (RequestContextMiddleware), the first read reads every epoch
in one round trip, and the others are answered from it: an API read that may
reuse both its token and its page asks Redis once.
"""

import contextvars
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from django.core.cache import caches
from django.db import transaction
from redis import RedisError

from apps.core.cache import redis_of
from apps.core.repeats import Repeated

logger = structlog.get_logger(__name__)
_unreadable = Repeated(logger, "epoch_unreadable")  # with Redis down, every API request would say so
_keys: list[str] = []  # of every epoch, in the order they were made
_read: contextvars.ContextVar[dict[str, int | None] | None] = contextvars.ContextVar("opsportal_epochs", default=None)


class Epoch:
    def __init__(self, key: str) -> None:
        self.key = key
        _keys.append(key)

    def move_on_commit(self, **_signal: object) -> None:
        """A new value once the current transaction commits (at once outside one); also a signal receiver."""
        transaction.on_commit(self.move)

    def move(self) -> None:
        read = _read.get()
        if read is not None:  # a later read in this request asks again
            read.clear()
        try:
            caches["default"].set(self.key, secrets.randbits(62), timeout=None)
        except (RedisError, OSError):  # the others stop reusing anyway while they cannot read it
            logger.warning("epoch_not_moved", epoch=self.key, exc_info=True)

    def read(self) -> int | None:
        """The value now (0 before the first move); None when the cache cannot be read."""
        read = _read.get()
        if read is None or self.key not in read:
            values = _read_all()
            if read is None:
                return values[self.key]
            read.update(values)
        return read[self.key]


@contextmanager
def one_read_per_request() -> Iterator[None]:
    """Within this block, every epoch is read from the cache at most once (all of them at the first read)."""
    token = _read.set({})
    try:
        yield
    finally:
        _read.reset(token)


def _read_all() -> dict[str, int | None]:
    backend = caches["default"]
    try:
        redis = redis_of(backend)
        if redis is None:
            found = backend.get_many(_keys)
            return {key: found.get(key, 0) for key in _keys}
        values = redis.mget([backend.make_and_validate_key(key) for key in _keys])  # Django's get_many costs more
        return {key: int(value) if value is not None else 0 for key, value in zip(_keys, values, strict=True)}
    except (RedisError, OSError, ValueError):
        _unreadable.warning(epochs=_keys, exc_info=True)
        return dict.fromkeys(_keys)
