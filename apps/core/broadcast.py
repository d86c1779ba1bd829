"""broadcast_on_commit(): tell live pages about a change once it is committed, never before.

Every frame is {"topic", "type", "seq", "ts", "data"}: `seq` counts the topic's
frames across the whole deployment (one Redis counter per topic with
channels-redis, a counter in the process with the in-process layer), `ts` is
the publish time. A frame that cannot be sent is dropped and logged: the
subscribers see the gap in `seq` and ask for a snapshot, so nothing is lost
silently.
"""

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
# Seconds between two layer messages of one topic at least: frames closer together share one. Well
# under the period of any steady stream (a 10-per-second topic never waits): a window as long as
# the period would lock the sends to its own grid, late by whatever the first frame was.
WINDOW = 0.02
MAX_BATCH = 500  # frames in one layer message at most: a burst is split, never held back
MAX_QUEUED = 20_000  # frames waiting for the publisher thread (Redis hangs): past that they are dropped
SEQ_KEY = "opsportal:broadcast:seq:{topic}"
# One round trip per batch: reserve n numbers. A counter that Redis lost (a restart without
# persistence, a flush) starts again from the clock in milliseconds, ahead of any number it gave
# before (unless a topic averaged over 1,000 frames a second), so seq never goes back.
RESERVE = """
redis.call('SET', KEYS[1], ARGV[2], 'NX')
return redis.call('INCRBY', KEYS[1], ARGV[1])
"""


def group_name(topic: str) -> str:
    """The channel-layer group that a topic's subscribers (one per web process) join."""
    return f"topic.{topic}"


def broadcast_on_commit(topic: str, type: str, data: dict[str, Any], *, using: str = "default") -> None:
    """Publish a frame on topic after the current transaction commits (at once outside one).

    A broadcast is a hint to refresh, not a record: if the channel layer is down
    the change is still in the database, so a failure is logged, never raised.
    Subscribers receive layer messages {"type": "broadcast", "topic": topic,
    "frames": [frame, ...]} in seq order: with channels-redis, the topic's
    frames that this process published within WINDOW seconds (Publisher).
    """
    transaction.on_commit(lambda: _publisher.publish(topic, type, data), using=using)


async def current_seq(layer: Any, topic: str) -> int:
    """The last seq given to topic (what a subscriber that joins now has seen), from the given layer's loop."""
    if isinstance(layer, InMemoryChannelLayer):
        return _publisher.local_seq.get(topic, 0)
    return await _reserve(layer, topic, 0)


def receive_in(loop: asyncio.AbstractEventLoop | None) -> None:
    """Name the event loop that receives from the in-process layer (the web process's hub), or None.

    The in-process layer's queues belong to one event loop and are not thread-safe:
    a frame published from a worker thread is handed to that loop instead.
    """
    _publisher.local_loop = loop


class Publisher:
    """Sends broadcasts from one thread per process, with one event loop and so one set of layer connections.

    async_to_sync() from a thread without an event loop starts a new loop, and
    channels-redis a new connection, for every message: milliseconds of CPU per
    broadcast. Here the committing thread only queues the frame; the thread
    sends a topic's frame at once if the topic sent nothing in the last WINDOW
    seconds, else at the end of that window together with what else arrived:
    a producer firing thousands of alerts a second costs fifty layer messages a
    second, while a frame of a steady stream leaves without delay.
    With the in-process layer of the embedded mode there is no thread: the frame
    is numbered and handed to the receiving loop at once.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[str, dict[str, Any]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self.local_seq: dict[str, int] = {}
        self.unnumbered: dict[str, int] = {}  # frames of a topic lost before they got a seq
        self.local_loop: asyncio.AbstractEventLoop | None = None

    def publish(self, topic: str, type: str, data: dict[str, Any]) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        frame = {"topic": topic, "type": type, "seq": 0, "ts": time.time(), "data": data}
        if isinstance(layer, InMemoryChannelLayer):
            self._publish_locally(layer, topic, frame)
            return
        self._ensure_running()
        if self._queue.qsize() >= MAX_QUEUED:
            self._lose(topic, 1)
            return
        self._queue.put((topic, frame))

    def _lose(self, topic: str, count: int) -> None:
        """Count frames lost before numbering: the topic's next frame skips their numbers, so clients see a gap."""
        with self._lock:
            self.unnumbered[topic] = self.unnumbered.get(topic, 0) + count

    def _publish_locally(self, layer: InMemoryChannelLayer, topic: str, frame: dict[str, Any]) -> None:
        message = {"type": "broadcast", "topic": topic, "frames": [frame]}
        loop = self.local_loop
        with self._lock:  # numbered and handed over in one step, so the loop receives them in seq order
            frame["seq"] = self.local_seq[topic] = self.local_seq.get(topic, 0) + 1 + self.unnumbered.pop(topic, 0)
            if group_name(topic) not in layer.groups:
                return  # nobody in this process listens, and the in-process layer reaches no other
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(_send_soon, layer, topic, message)
                return
        _send(async_to_sync(layer.group_send), topic, message)

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
        waiting: dict[str, list[dict[str, Any]]] = {}
        sent_at: dict[str, float] = {}
        while True:
            self._collect(waiting, sent_at)
            now = time.monotonic()
            for topic in [t for t, frames in waiting.items() if _due(sent_at.get(t), now) or len(frames) >= MAX_BATCH]:
                frames, waiting[topic] = waiting[topic][:MAX_BATCH], waiting[topic][MAX_BATCH:]
                if not waiting[topic]:
                    del waiting[topic]
                sent_at[topic] = now
                with self._lock:
                    skip = self.unnumbered.pop(topic, 0)
                if not loop.run_until_complete(_number_and_send(layer, topic, frames, skip)):
                    self._lose(topic, skip + len(frames))

    def _collect(self, waiting: dict[str, list[dict[str, Any]]], sent_at: dict[str, float]) -> None:
        """Wait for the next frame (at most until a waiting topic is due), then take whatever else is queued."""
        due = [sent_at.get(topic, 0.0) + WINDOW for topic in waiting]
        timeout = max(0.0, min(due) - time.monotonic()) if due else None
        try:
            topic, frame = self._queue.get(timeout=timeout)
        except queue.Empty:
            return
        waiting.setdefault(topic, []).append(frame)
        for _ in range(MAX_BATCH):
            try:
                topic, frame = self._queue.get_nowait()
            except queue.Empty:
                return
            waiting.setdefault(topic, []).append(frame)


def _due(sent_at: float | None, now: float) -> bool:
    return sent_at is None or now - sent_at >= WINDOW


async def _reserve(layer: Any, topic: str, count: int) -> int:
    """Add count to the topic's Redis counter and return the new value (the last of the numbers reserved)."""
    key = SEQ_KEY.format(topic=topic)
    connection = layer.connection(layer.consistent_hash(key))
    return int(await connection.eval(RESERVE, 1, key, count, int(time.time() * 1000)))


async def _number_and_send(layer: Any, topic: str, frames: list[dict[str, Any]], skip: int) -> bool:
    """Number the frames after `skip` lost ones and send them; False if they could not even be numbered."""
    try:
        last = await _reserve(layer, topic, skip + len(frames))
    except Exception:
        logger.warning("broadcast_failed", topic=topic, frames=len(frames), exc_info=True)
        return False
    for seq, frame in enumerate(frames, start=last - len(frames) + 1):
        frame["seq"] = seq
    try:
        await layer.group_send(group_name(topic), {"type": "broadcast", "topic": topic, "frames": frames})
    except Exception:  # numbered: the subscribers will see the gap
        logger.warning("broadcast_failed", topic=topic, frames=len(frames), exc_info=True)
    return True


def _send_soon(layer: InMemoryChannelLayer, topic: str, message: dict[str, Any]) -> None:
    """In the receiving loop: send without waiting (the in-process group_send never blocks)."""
    task = asyncio.ensure_future(_send_async(layer, topic, message))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def _send_async(layer: InMemoryChannelLayer, topic: str, message: dict[str, Any]) -> None:
    try:
        await layer.group_send(group_name(topic), message)
    except Exception:
        logger.warning("broadcast_failed", topic=topic, exc_info=True)


def _send(group_send: Any, topic: str, message: dict[str, Any]) -> None:
    try:
        group_send(group_name(topic), message)
    except Exception:
        logger.warning("broadcast_failed", topic=topic, exc_info=True)


_pending: set[asyncio.Task] = set()  # tasks must be referenced until done
_publisher = Publisher()
