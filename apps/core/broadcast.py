"""broadcast_on_commit(): tell live pages about a change once it is committed, never before."""

import asyncio
import os
import queue
import threading
import time
from typing import Any

import structlog
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

logger = structlog.get_logger(__name__)
WINDOW = 0.1  # seconds a frame waits for more payloads after its first
MAX_BATCH = 500  # payloads in one frame at most: a burst is split, never held back


def group_name(topic: str) -> str:
    """The channel-layer group that a topic's subscribers (one per web process) join."""
    return f"topic.{topic}"


def broadcast_on_commit(topic: str, type: str, data: dict[str, Any], *, using: str = "default") -> None:
    """Send payload to the topic's group after the current transaction commits (at once outside one).

    A broadcast is a hint to refresh, not a record: if the channel layer is down
    the change is still in the database, so a failure is logged, never raised.
    Subscribers receive frames of {"type": "broadcast", "topic": topic,
    "payloads": [payload, ...]}, oldest first: with channels-redis, those of
    the topic that this process committed within 0.1 s (Publisher).
    """
    payload = {"type": type, "data": data}
    transaction.on_commit(lambda: _publisher.publish(topic, payload), using=using)


class Publisher:
    """Sends broadcasts from one thread per process, with one event loop and so one set of layer connections.

    async_to_sync() from a thread without an event loop starts a new loop, and
    channels-redis a new connection, for every message: milliseconds of CPU per
    broadcast. Here the committing thread only queues the message; the thread
    sends what arrived within WINDOW seconds of the first as one frame per
    topic. A layer message costs about 1.5 ms of CPU with one subscriber, so a
    producer firing hundreds of alerts a second sends ten frames a second, not
    hundreds (at most 0.1 s later, which nobody watching a page can tell). The
    in-process layer of the embedded mode is not shared across event loops, so
    it is still sent to from the caller's thread (as cheap there as it is correct).
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[str, dict[str, Any]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        if isinstance(layer, InMemoryChannelLayer):
            _send(async_to_sync(layer.group_send), topic, [payload])
            return
        self._ensure_running()
        self._queue.put((topic, payload))

    def _ensure_running(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:  # the first broadcast in this process (or the first after a fork)
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="opsportal-broadcast", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        layer = get_channel_layer()
        while True:
            for topic, payloads in self._waiting().items():
                _send(lambda group, message: loop.run_until_complete(layer.group_send(group, message)), topic, payloads)

    def _waiting(self) -> dict[str, list[dict[str, Any]]]:
        """The next message (waiting for one) and those that arrive within WINDOW of it, up to MAX_BATCH, by topic."""
        topic, payload = self._queue.get()
        batches, deadline = {topic: [payload]}, time.monotonic() + WINDOW
        for _ in range(MAX_BATCH - 1):
            try:
                topic, payload = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            batches.setdefault(topic, []).append(payload)
        return batches


def _send(group_send: Any, topic: str, payloads: list[dict[str, Any]]) -> None:
    try:
        group_send(group_name(topic), {"type": "broadcast", "topic": topic, "payloads": payloads})
    except Exception:
        logger.warning("broadcast_failed", topic=topic, exc_info=True)


_publisher = Publisher()
