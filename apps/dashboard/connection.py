"""One dashboard socket as the hub sees it: a bounded queue of serialised frames and one writer task.

The writer calls the server's own ASGI send (scope["opsportal.send"], kept by
keep_raw_send before Channels' middleware wraps it): with uvicorn's
websockets-sansio protocol, send() waits while the transport's write buffer is
above its high-water mark (pause_writing), so a client that stops reading holds
at most that buffer plus one frame; what arrives meanwhile waits in the queue,
whose oldest frames give way to the newest (counted as dropped: the client sees
the seq gap and asks for a snapshot). A client whose send has not returned for
DASHBOARD_STALL_SECONDS is closed (the hub checks every second).
"""

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

logger = structlog.get_logger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
CLOSE_TIMEOUT = 1.0  # seconds a close frame may wait for a stalled client's buffer before the socket is cut


class Stats:
    """This process's dashboard counters, read by the metrics reporter's thread (plain ints: atomic reads)."""

    def __init__(self) -> None:
        self.clients = 0
        self.sent = 0
        self.dropped = 0


stats = Stats()


class Connection:
    """A socket's queue and writer; push() is the per-frame hot path: no task, no encoding, no await."""

    def __init__(self, send: Send, *, user_id: int, session_key: str, allowed: frozenset[str], limit: int) -> None:
        self.send = send
        self.user_id = user_id
        self.session_key = session_key
        self.allowed = allowed  # the topics the user may read, as of the last check
        self.topics: set[str] = set()
        self.queue: collections.deque[str] = collections.deque(maxlen=limit)
        self.dropped = 0
        self.busy_since: float | None = None  # when the send under way started
        self.closed = False
        self._wakeup = asyncio.Event()
        self._writer = asyncio.ensure_future(self._write())
        stats.clients += 1

    def push(self, text: str) -> None:
        """Queue a serialised frame; a full queue forgets its oldest frame (a slow client skips ahead)."""
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
            stats.dropped += 1
        self.queue.append(text)
        self._wakeup.set()

    def stalled_for(self, now: float) -> float:
        """Seconds the current send has been waiting for the client (0 when none is waiting)."""
        return 0.0 if self.busy_since is None else now - self.busy_since

    async def _write(self) -> None:
        queue, send, wakeup = self.queue, self.send, self._wakeup
        try:
            while True:
                await wakeup.wait()
                wakeup.clear()
                while queue:
                    self.busy_since = time.monotonic()
                    await send({"type": "websocket.send", "text": queue.popleft()})
                    stats.sent += 1
                self.busy_since = None
        except asyncio.CancelledError:
            raise
        except Exception:  # the client went away (ClientDisconnected, OSError): the consumer's disconnect cleans up
            self.queue.clear()

    async def close(self, code: int) -> None:
        """Stop writing and close with code; a client too stalled to take the close frame is cut off."""
        if self.closed:
            return
        self.detach()
        try:
            await asyncio.wait_for(self.send({"type": "websocket.close", "code": code}), CLOSE_TIMEOUT)
        except Exception:
            transport = getattr(getattr(self.send, "__self__", None), "transport", None)  # uvicorn's protocol
            if transport is not None:
                transport.abort()
            logger.info("dashboard_socket_cut", code=code)

    def detach(self) -> None:
        """Stop the writer and forget the queue (the socket is closing or gone)."""
        if not self.closed:
            self.closed = True
            stats.clients -= 1
        self._writer.cancel()
        self.queue.clear()


def keep_raw_send(app: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """ASGI middleware: remember the server's own send in the scope, for the hub's writers."""

    async def middleware(scope: dict[str, Any], receive: Any, send: Send) -> None:
        await app({**scope, "opsportal.send": send}, receive, send)

    return middleware
