"""One dashboard socket as the hub sees it: a bounded queue of serialised frames and one writer task.

Frames go through the server's own ASGI send (scope["opsportal.send"], kept by
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
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State

logger = structlog.get_logger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
CLOSE_TIMEOUT = 1.0  # seconds a close frame may wait for a stalled client's buffer before the socket is cut


class Outgoing:
    """A frame serialised once for all sockets: its text, and (built on first use) its bytes on the wire."""

    __slots__ = ("_wire", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        """The WebSocket text frame (a server's frames are unmasked; the portal negotiates no compression)."""
        if self._wire is None:
            self._wire = Frame(Opcode.TEXT, self.text.encode()).serialize(mask=False, extensions=[])
        return self._wire


class Stats:
    """This process's dashboard counters, read by the metrics reporter's thread (plain ints: atomic reads)."""

    def __init__(self) -> None:
        self.clients = 0
        self.sent = 0
        self.dropped = 0


stats = Stats()


class Connection:
    """A socket's queue and writer; push() is the per-frame hot path: no task, no encoding.

    While the socket keeps up, push() writes the frame's bytes, framed once for
    every socket, straight to uvicorn's transport: its ASGI send would frame
    the same text again for each socket (three quarters of the fan-out's CPU).
    Elsewhere (a test's communicator) the ASGI send runs at once, completing
    without suspending while the client keeps up. A socket whose transport is
    paused (flow control) is handed to the writer task, which waits in the ASGI
    send and then drains what queued meanwhile, in order.
    """

    def __init__(self, send: Send, *, user_id: int, session_key: str, allowed: frozenset[str], limit: int) -> None:
        self.send = send
        protocol = getattr(send, "__self__", None)  # a bound method of the server's protocol, when uvicorn serves
        self._protocol = protocol if isinstance(protocol, WebSocketsSansIOProtocol) else None
        self.user_id = user_id
        self.session_key = session_key
        self.allowed = allowed  # the topics the user may read, as of the last check
        self.topics: set[str] = set()
        self.queue: collections.deque[Outgoing] = collections.deque(maxlen=limit)
        self.dropped = 0
        self.busy_since: float | None = None  # when the send under way started waiting
        self.closed = False
        self._busy = False  # the writer task owns the socket's output: frames queue behind it
        self._suspended: tuple[Coroutine[Any, Any, None], Any] | None = None  # a send waiting for the client
        self._wakeup = asyncio.Event()
        self._writer = asyncio.ensure_future(self._write())
        stats.clients += 1

    def push(self, frame: Outgoing) -> None:
        """Send a serialised frame now, or queue it; a full queue forgets its oldest frame (a slow client skips)."""
        if self._busy:
            queue = self.queue
            if len(queue) == queue.maxlen:
                self.dropped += 1
                stats.dropped += 1
            queue.append(frame)
            return
        protocol = self._protocol
        if (
            protocol is not None
            and protocol.writable.is_set()
            and protocol.conn.state is State.OPEN
            and not (protocol.close_sent or protocol.disconnected)
        ):
            protocol.transport.write(frame.wire)
            stats.sent += 1
            return
        sending = self.send({"type": "websocket.send", "text": frame.text})
        try:
            waits_for = sending.send(None)
        except StopIteration:
            stats.sent += 1
            return
        except Exception:  # the client went away: the consumer's disconnect cleans up
            self._busy = True
            return
        self._busy, self._suspended, self.busy_since = True, (sending, waits_for), time.monotonic()
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
                if self._suspended is not None:
                    sending, waits_for = self._suspended
                    self._suspended = None
                    await _finish(sending, waits_for)
                    stats.sent += 1
                while queue:
                    self.busy_since = time.monotonic()
                    await send({"type": "websocket.send", "text": queue.popleft().text})
                    stats.sent += 1
                self.busy_since = None
                self._busy = False
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
        self._busy = True  # nothing is sent any more
        self._writer.cancel()
        if self._suspended is not None:
            self._suspended[0].close()  # never resumed: let it clean up (it wrote nothing yet)
            self._suspended = None
        self.queue.clear()


async def _finish(sending: Coroutine[Any, Any, None], waits_for: Any) -> None:
    """Drive a send that push() started and that suspended, to its end, as a task would have.

    What a coroutine yields is the future it waits for (None for a bare yield,
    as asyncio.sleep(0) does); a Task clears the future's blocking flag before
    waiting for it, so this does too.
    """
    while True:
        try:
            if waits_for is None:
                await asyncio.sleep(0)
            else:
                waits_for._asyncio_future_blocking = False
                await waits_for
        except BaseException as exc:  # cancelled (the socket is closing) or failed: the send sees it too
            waits_for = sending.throw(exc)
            continue
        try:
            waits_for = sending.send(None)
        except StopIteration:
            return


def keep_raw_send(app: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """ASGI middleware: remember the server's own send in the scope, for the hub's writers."""

    async def middleware(scope: dict[str, Any], receive: Any, send: Send) -> None:
        await app({**scope, "opsportal.send": send}, receive, send)

    return middleware
