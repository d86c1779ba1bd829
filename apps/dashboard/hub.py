"""The per-process hub: one channel-layer membership per topic, fan-out to this process's sockets.

A `group_send` per socket costs 110-190 µs of CPU per delivery and loses frames
silently when a channel is full (issue 7). Instead each web process joins each
topic's group once, with a channel of its own, in the server's event loop; a
frame is serialised once and queued for every local socket subscribed to the
topic (permissions are filtered at subscribe and re-checked every second).

Frames from several publishers may arrive out of seq order: one that comes
early waits up to REORDER_SECONDS for the missing ones, then goes with the gap
(clients resync). A lost layer (Redis restarted or unreachable) is rebuilt with
backoff, its groups joined again, and every socket gets fresh snapshots.
"""

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Coroutine
from typing import Any

import orjson
import structlog
from channels.db import database_sync_to_async
from channels.layers import DEFAULT_CHANNEL_LAYER, InMemoryChannelLayer, channel_layers, get_channel_layer
from django.conf import settings

from apps.core import broadcast
from apps.dashboard import access, snapshots
from apps.dashboard.connection import Connection, Outgoing, Send, stats
from apps.metrics import reporting

logger = structlog.get_logger(__name__)

REORDER_SECONDS = 0.05  # how long an early frame waits for the ones before it
TICK_SECONDS = 1.0  # access re-checks, stalled clients, liveness of the layer
REJOIN_SECONDS = 60.0  # group memberships expire (group_expiry): renewed well before
BACKOFF = (0.1, 0.2, 0.5, 1.0)  # seconds between reconnection attempts; the last repeats
BRPOP_SECONDS = 2
CLOSE_LAYER_SECONDS = 2
MARKER = "opsportal:broadcast:hub:{channel}"  # gone from Redis = Redis lost its state (restarted, flushed)
CLOSE_NOT_LOGGED_IN = 4401
CLOSE_NOT_ALLOWED = 4403
CLOSE_TOO_SLOW = 4408


def encode(frame: dict[str, Any]) -> Outgoing:
    return Outgoing(orjson.dumps(frame).decode())


class Hub:
    """All of one event loop's dashboard sockets (the web server's loop: one hub per process)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.connections: set[Connection] = set()
        self.subscribers: dict[str, set[Connection]] = defaultdict(set)
        self.holding: dict[str, dict[Connection, list[Outgoing]]] = defaultdict(dict)  # waiting for their snapshot
        self.last_seq: dict[str, int] = {}  # the last seq delivered, per topic
        self.early: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        self.early_timers: dict[str, asyncio.TimerHandle] = {}
        self.joins: dict[str, asyncio.Future] = {}  # topics this process is a member of (or joining)
        self.wanted: dict[str, set[Connection]] = defaultdict(set)  # snapshot requests not yet being read
        self.reading: dict[str, asyncio.Task] = {}
        self.layer: Any = None
        self.channel = ""
        self.connected = asyncio.Event()
        self.receiver = asyncio.ensure_future(self._receive(recovering=False))
        self.ticker = asyncio.ensure_future(self._tick())

    # ---------------------------------------------------------------- sockets

    def attach(self, send: Send, *, user_id: int, session_key: str, allowed: frozenset[str]) -> Connection:
        limit = settings.DASHBOARD_QUEUE_FRAMES
        connection = Connection(send, user_id=user_id, session_key=session_key, allowed=allowed, limit=limit)
        self.connections.add(connection)
        return connection

    def detach(self, connection: Connection) -> None:
        self._forget(connection)
        connection.detach()

    def _forget(self, connection: Connection) -> None:
        self.unsubscribe(connection, set(connection.topics))
        self.connections.discard(connection)

    async def subscribe(self, connection: Connection, topics: set[str]) -> None:
        """Join the topics' groups if this process is not in them yet, then send each a snapshot."""
        new = topics - connection.topics
        connection.topics |= new
        for topic in sorted(new):
            if topic not in self.joins or _failed(self.joins[topic]):
                self.joins[topic] = asyncio.ensure_future(self._join(topic))
        for topic in sorted(new):
            with contextlib.suppress(Exception):  # logged by _join; the reconnection joins again
                await asyncio.shield(self.joins[topic])
            if topic in connection.topics:
                self.resync(connection, topic)

    def unsubscribe(self, connection: Connection, topics: set[str]) -> None:
        for topic in topics & connection.topics:
            connection.topics.discard(topic)
            self.subscribers[topic].discard(connection)
            self.holding[topic].pop(connection, None)
            self.wanted[topic].discard(connection)

    def resync(self, connection: Connection, topic: str) -> None:
        """Queue a snapshot of topic for the socket: requests that arrive together share one read."""
        self.wanted[topic].add(connection)
        if topic not in self.reading:
            self.reading[topic] = asyncio.ensure_future(self._snapshots(topic))

    async def _snapshots(self, topic: str) -> None:
        """Read and send snapshots while sockets want them.

        The snapshot's seq is the last one delivered before the read began: the
        frames delivered during the read are held and follow it (a frame may
        repeat what the snapshot shows; none is missed).
        """
        try:
            while self.wanted[topic]:
                batch, self.wanted[topic] = self.wanted[topic], set()
                held = self.holding[topic]
                for connection in batch:
                    self.subscribers[topic].discard(connection)
                    held.setdefault(connection, [])
                seq = self.last_seq.get(topic, 0)
                try:
                    data = await database_sync_to_async(snapshots.PROVIDERS[topic])()
                    text = encode({"topic": topic, "type": "snapshot", "seq": seq, "ts": time.time(), "data": data})
                except Exception:
                    logger.exception("dashboard_snapshot_failed", topic=topic)
                    text = encode({"type": "error", "error": f"the {topic} snapshot failed; live frames continue"})
                for connection, frames in list(held.items()):
                    if connection in batch:
                        del held[connection]
                        connection.push(text)
                        for frame in frames:
                            connection.push(frame)
                        self.subscribers[topic].add(connection)
        finally:
            del self.reading[topic]

    # ---------------------------------------------------------------- frames

    def _arrived(self, topic: str, frames: list[dict[str, Any]]) -> None:
        """A layer message's frames: those now in seq order go out together."""
        ready: list[dict[str, Any]] = []
        for frame in frames:
            self._accept(topic, frame, ready)
        self._deliver(topic, ready)

    def _deliver(self, topic: str, frames: list[dict[str, Any]]) -> None:
        """Serialise each frame once; write a socket's frames one after the other (one system call, not one each)."""
        if not frames:
            return
        texts = [encode(frame) for frame in frames]
        for connection in self.subscribers[topic]:
            for text in texts:
                connection.push(text)
        for held in self.holding[topic].values():
            held.extend(texts)

    def _accept(self, topic: str, frame: dict[str, Any], ready: list[dict[str, Any]]) -> None:
        """Put frames in seq order into ready: an early one waits (REORDER_SECONDS at most) for those before it."""
        seq, last = frame["seq"], self.last_seq.get(topic, 0)
        early = self.early[topic]
        # The next one; or nothing seen yet; or far below the last (a counter that started again must
        # not leave the topic deaf for good).
        if seq == last + 1 or last == 0 or seq < last - 1_000_000:
            self.last_seq[topic] = seq
            ready.append(frame)
            while seq + 1 in early:
                seq += 1
                self.last_seq[topic] = seq
                ready.append(early.pop(seq))
            if not early and topic in self.early_timers:
                self.early_timers.pop(topic).cancel()
        elif seq > last:
            early[seq] = frame
            if topic not in self.early_timers:
                self.early_timers[topic] = self.loop.call_later(REORDER_SECONDS, self._give_up_waiting, topic)
        # else: a late frame, already counted as missing: the sockets were resynced past it

    def _give_up_waiting(self, topic: str) -> None:
        """The missing frames did not come: deliver the early ones with the gap (clients resync)."""
        self.early_timers.pop(topic, None)
        early = self.early.pop(topic, {})
        if early:
            self.last_seq[topic] = max(early)
            self._deliver(topic, [early[seq] for seq in sorted(early)])

    # ---------------------------------------------------------------- the layer

    async def _join(self, topic: str) -> None:
        await self.connected.wait()
        try:
            await self.layer.group_add(broadcast.group_name(topic), self.channel)
            self.last_seq[topic] = await broadcast.current_seq(self.layer, topic)
        except Exception:
            logger.warning("dashboard_join_failed", topic=topic, exc_info=True)
            raise

    async def _connect(self) -> None:
        """A layer and channel of our own (channels-redis: its state belongs to one loop), in every joined group."""
        layer = get_channel_layer()
        if isinstance(layer, InMemoryChannelLayer):
            broadcast.receive_in(self.loop)
        else:
            layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
            # Its BRPOP blocks 5 s by default, as long as redis-py's default read timeout: every
            # quiet receive would end in a TimeoutError. A shorter block leaves a margin.
            layer.brpop_timeout = BRPOP_SECONDS
        channel = await layer.new_channel()
        try:
            for topic in list(self.joins):
                await layer.group_add(broadcast.group_name(topic), channel)
                self.last_seq[topic] = await broadcast.current_seq(layer, topic)
            await self._mark(layer, channel)
        except Exception:
            await _close(layer)
            raise
        if self.channel and self.channel != channel:  # the old channel would get every frame until it expires
            for topic in list(self.joins):
                await _discard(layer, topic, self.channel)
        self.layer, self.channel = layer, channel
        self.early.clear()
        for timer in self.early_timers.values():
            timer.cancel()
        self.early_timers.clear()
        self.connected.set()

    async def _receive(self, *, recovering: bool) -> None:
        attempt = 0
        while True:
            if not self.connected.is_set():
                try:
                    await self._connect()
                except Exception:
                    if asyncio.current_task().cancelling():
                        raise asyncio.CancelledError from None
                    logger.warning("dashboard_layer_unavailable", attempt=attempt, exc_info=attempt == 0)
                    await asyncio.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
                    attempt += 1
                    continue
                if recovering:
                    logger.info("dashboard_layer_back", attempts=attempt)
                    self._resync_everyone()
                attempt, recovering = 0, True
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                if asyncio.current_task().cancelling():  # a cancellation the Redis client turned into an error
                    raise asyncio.CancelledError from None
                logger.warning("dashboard_layer_lost", exc_info=True)
                await self._lose_layer()
                continue
            try:
                self._arrived(message["topic"], message.get("frames", []))
            except Exception:  # one bad message must not end the loop: that would be a silent dead consumer
                logger.exception("dashboard_message_failed", topic=message.get("topic"))

    async def _lose_layer(self) -> None:
        self.connected.clear()
        layer, self.layer = self.layer, None
        if layer is not None and not isinstance(layer, InMemoryChannelLayer):
            await _close(layer)

    def _resync_everyone(self) -> None:
        """Frames were lost while the layer was away: every socket gets a fresh snapshot of its topics."""
        for topic in list(self.joins):
            for connection in [*self.subscribers[topic], *self.holding[topic]]:
                self.resync(connection, topic)

    async def _mark(self, layer: Any, channel: str) -> None:
        """Leave a key in Redis that only a restart or a flush removes (the in-process layer cannot lose state)."""
        if isinstance(layer, InMemoryChannelLayer):
            return
        key = MARKER.format(channel=channel)
        await layer.connection(layer.consistent_hash(key)).set(key, 1, ex=int(REJOIN_SECONDS * 10))

    async def _still_there(self) -> bool:
        if isinstance(self.layer, InMemoryChannelLayer):
            return True
        key = MARKER.format(channel=self.channel)
        return bool(await self.layer.connection(self.layer.consistent_hash(key)).exists(key))

    # ---------------------------------------------------------------- every second

    async def _tick(self) -> None:
        rejoined = heartbeat = time.monotonic()
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = time.monotonic()
            try:
                await self._check_layer(rejoin=now - rejoined >= REJOIN_SECONDS)
                self._retry_failed_joins()
                if now - rejoined >= REJOIN_SECONDS:
                    rejoined = now
                if now - heartbeat >= settings.DASHBOARD_HEARTBEAT_SECONDS:
                    heartbeat = now
                    self._broadcast_control({"type": "heartbeat", "ts": time.time()})
                self._close_stalled(now)
                await self._check_access()
                self._leave_unused()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("dashboard_tick_failed")

    def _retry_failed_joins(self) -> None:
        """A group_add that failed while the layer itself went on working must not leave a topic deaf."""
        if self.connected.is_set():
            for topic, join in list(self.joins.items()):
                if _failed(join):
                    self.joins[topic] = asyncio.ensure_future(self._join(topic))

    async def _check_layer(self, *, rejoin: bool) -> None:
        """A layer that lost its state without an error on our connection (a quick Redis restart) is rebuilt."""
        if not self.connected.is_set():
            return
        try:
            alive = await self._still_there()
            if alive and rejoin:
                for topic in list(self.joins):
                    await self.layer.group_add(broadcast.group_name(topic), self.channel)
                await self._mark(self.layer, self.channel)
        except Exception:
            alive = False
        if not alive:
            logger.warning("dashboard_layer_reset")
            self.receiver.cancel()
            await asyncio.wait([self.receiver], timeout=CLOSE_LAYER_SECONDS)  # bounded: the tick must go on
            await self._lose_layer()
            self.receiver = asyncio.ensure_future(self._receive(recovering=True))

    def _broadcast_control(self, frame: dict[str, Any]) -> None:
        text = encode(frame)
        for connection in self.connections:
            connection.push(text)

    def _close_stalled(self, now: float) -> None:
        limit = settings.DASHBOARD_STALL_SECONDS
        for connection in [c for c in self.connections if c.stalled_for(now) > limit]:
            logger.info("dashboard_client_stalled", user_id=connection.user_id, dropped=connection.dropped)
            self._close(connection, CLOSE_TOO_SLOW)

    async def _check_access(self) -> None:
        """One batch for every socket: closed when its session or user is gone, topics dropped when not allowed."""
        if not self.connections:
            return
        users = {c.user_id for c in self.connections}
        sessions = {c.session_key for c in self.connections}
        allowed, alive = await database_sync_to_async(access.current)(users, sessions)
        for connection in list(self.connections):
            if connection.session_key not in alive:
                self._close(connection, CLOSE_NOT_LOGGED_IN)
            elif connection.user_id not in allowed:
                self._close(connection, CLOSE_NOT_ALLOWED)
            elif allowed[connection.user_id] != connection.allowed:
                connection.allowed = allowed[connection.user_id]
                lost = connection.topics - connection.allowed
                if lost:
                    self.unsubscribe(connection, lost)
                    connection.push(encode({"type": "subscribed", "topics": sorted(connection.topics),
                                            "denied": sorted(lost)}))  # fmt: skip

    def _close(self, connection: Connection, code: int) -> None:
        """Out of the hub at once; the close frame in a task of its own (a stalled client's takes up to 1 s)."""
        self._forget(connection)
        _in_background(connection.close(code))

    def _leave_unused(self) -> None:
        """Leave the groups of topics nobody here reads any more (the layer stops sending them here)."""
        needed = set().union(*(c.topics for c in self.connections))
        for topic in [t for t, join in self.joins.items() if t not in needed and join.done()]:
            self.joins.pop(topic)
            self.last_seq.pop(topic, None)
            if self.connected.is_set():
                _in_background(_discard(self.layer, topic, self.channel))

    async def stop(self) -> None:
        """Cancel the hub's tasks and close every socket's writer (tests; a server's loop just ends)."""
        for connection in list(self.connections):
            self.detach(connection)
        tasks = [self.receiver, self.ticker, *self.reading.values(), *self.joins.values()]
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=CLOSE_LAYER_SECONDS)
        await self._lose_layer()
        broadcast.receive_in(None)


def _in_background(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(work)
    _background.add(task)  # tasks must be referenced until done
    task.add_done_callback(_background.discard)


def _failed(join: asyncio.Future) -> bool:
    return join.done() and (join.cancelled() or join.exception() is not None)


async def _discard(layer: Any, topic: str, channel: str) -> None:
    with contextlib.suppress(Exception):
        await layer.group_discard(broadcast.group_name(topic), channel)


async def _close(layer: Any) -> None:
    """Close a lost layer's connections; bounded, as a layer that lost its server must not hold up the next."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(layer.close_pools(), CLOSE_LAYER_SECONDS)


_background: set[asyncio.Task] = set()
_hub: Hub | None = None


def hub() -> Hub:
    """This process's hub, started in the running loop (a new loop, as in tests, gets a new hub)."""
    global _hub
    loop = asyncio.get_running_loop()
    if _hub is None or _hub.loop is not loop:
        _hub = Hub(loop)
        _report()
    return _hub


def _report() -> None:
    """The hub's counters in this process's metrics report (the collector sums them over the processes).

    Registered when a process first serves a dashboard socket, not in AppConfig.ready(): a
    registration starts the reporter thread, which commands like `migrate` must not start.
    """
    reporting.register("dashboard.clients", lambda: stats.clients, kind="gauge")
    reporting.register("dashboard.frames.sent", lambda: stats.sent, kind="counter")
    reporting.register("dashboard.frames.dropped", lambda: stats.dropped, kind="counter")
