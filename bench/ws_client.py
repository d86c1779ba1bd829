"""A cheap WebSocket client for the fan-out benchmark: many sockets per process, every frame read and checked.

Written on asyncio's Protocol (uvloop) with the RFC 6455 framing done by hand,
not on the `websockets` client: a received frame costs one data_received()
call, one header parse and one orjson.loads(), a few microseconds, because on a
2-core machine every microsecond the clients spend is taken from the server
they measure. The figures report the client processes' own CPU.

Each socket logs in with a session cookie and the Origin the portal expects,
subscribes to the topics it is given, and for every frame with a `seq` records
the publisher's frame number (data.values["bench.frame"]), the seq and the
publish→receive latency from `ts`. It checks `seq` per topic as the contract
asks a client to: a jump (n+2 after n) is a gap, answered with a resync; a
snapshot sets the position it carries. Pings are answered, a close frame's code
is kept (4408: the server found the socket too slow).

A client process is driven by the orchestrator over a multiprocessing pipe
(`serve`): connect more sockets, start a phase, report it, quit.
"""

import asyncio
import base64
import os
import struct
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import orjson

try:
    import uvloop
except ImportError:  # pragma: no cover - the portal's requirements install it with uvicorn[standard]
    uvloop = None

OP_CONTINUATION, OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x8, 0x9, 0xA
CONNECT_CONCURRENCY = 50  # handshakes in flight per process: the server authenticates each one
FRAME_KEY = "bench.frame"  # the publisher's frame number, in data.values


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked frame, as a client must send them (RFC 6455 5.3)."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    # Byte by byte is slow, but clients send a handful of short messages per socket.
    return head + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


def handshake(host: str, port: int, path: str, cookie: str) -> bytes:
    """The upgrade request; Origin is the server's own address, which AllowedHostsOriginValidator accepts."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Origin: http://{host}:{port}",
    ]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def split_frames(buffer: bytearray) -> list[tuple[int, bool, bytes]]:
    """The whole server frames at the start of buffer as (opcode, fin, payload); removes them from it.

    Server frames are never masked (RFC 6455 5.1), so the header is 2, 4 or 10 bytes.
    """
    frames, start, end = [], 0, len(buffer)
    while end - start >= 2:
        first, second = buffer[start], buffer[start + 1] & 0x7F
        offset = start + 2
        if second == 126:
            if end - offset < 2:
                break
            (second,) = struct.unpack_from("!H", buffer, offset)
            offset += 2
        elif second == 127:
            if end - offset < 8:
                break
            (second,) = struct.unpack_from("!Q", buffer, offset)
            offset += 8
        if end - offset < second:
            break
        frames.append((first & 0x0F, bool(first & 0x80), bytes(buffer[offset : offset + second])))
        start = offset + second
    del buffer[:start]
    return frames


@dataclass
class Record:
    """What one socket saw during the current phase."""

    frames: array = field(default_factory=lambda: array("l"))  # bench.frame numbers, in arrival order
    seqs: array = field(default_factory=lambda: array("q"))
    latencies: array = field(default_factory=lambda: array("d"))  # seconds, publish → read
    snapshots: list[int] = field(default_factory=list)  # the seq each snapshot carried
    gaps: int = 0  # seq jumps seen (each answered with a resync unless one was pending)
    skipped: int = 0  # seqs jumped over
    stale: int = 0  # frames whose seq was not above the last one seen (duplicates, reordering)
    errors: int = 0  # error frames from the server


class Dashboard(asyncio.Protocol):
    """One dashboard socket: handshake, subscribe, then read and check every frame."""

    def __init__(self, request: bytes, subscribe: bytes, opened: asyncio.Future) -> None:
        self.request = request
        self.subscribe = subscribe
        self.opened = opened  # done at the first snapshot: subscribed, so every later frame is due to it
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.fragments: list[bytes] = []
        self.last: dict[str, int] = {}  # topic → the last seq seen (frames and snapshots)
        self.resync_pending: set[str] = set()
        self.record = Record()
        self.close_code: int | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed during the handshake ({exc})"))

    def data_received(self, data: bytes) -> None:
        received = time.time()  # once per read: frames read together arrived together
        self.buffer += data
        if not self.upgraded and not self._upgrade():
            return
        for opcode, fin, payload in split_frames(self.buffer):
            if opcode == OP_CONTINUATION or not fin:
                self.fragments.append(payload)
                if not fin:
                    continue
                payload, self.fragments = b"".join(self.fragments), []
            if opcode in (OP_TEXT, OP_CONTINUATION):
                self.on_message(orjson.loads(payload), received)
            elif opcode == OP_PING:
                self.transport.write(client_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.transport.write(client_frame(OP_CLOSE, payload[:2]))
                self.transport.close()

    def _upgrade(self) -> bool:
        """Consume the handshake answer once whole; False while it is still incomplete."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        status = bytes(self.buffer[:end]).split(b"\r\n", 1)[0]
        del self.buffer[: end + 4]
        if b" 101 " not in status:
            self.opened.set_exception(ConnectionError(f"handshake refused: {status.decode(errors='replace')}"))
            self.transport.close()
            return False
        self.upgraded = True
        self.transport.write(client_frame(OP_TEXT, self.subscribe))
        return True

    def on_message(self, message: dict[str, Any], received: float) -> None:
        seq = message.get("seq")
        if seq is None:  # control frames: subscribed, pong, heartbeat, error
            self.record.errors += message.get("type") == "error"
            return
        topic = message["topic"]
        last = self.last.get(topic, 0)
        if message["type"] == "snapshot":
            if not self.opened.done():
                self.opened.set_result(None)
            self.record.snapshots.append(seq)
            self.resync_pending.discard(topic)
            self.last[topic] = seq
            return
        if last and seq > last + 1:
            self.record.gaps += 1
            self.record.skipped += seq - last - 1
            if topic not in self.resync_pending:  # one resync answers every gap before its snapshot
                self.resync_pending.add(topic)
                self.transport.write(client_frame(OP_TEXT, orjson.dumps({"type": "resync", "topic": topic})))
        elif last and seq <= last:
            self.record.stale += 1
        self.last[topic] = max(last, seq)
        values = message["data"].get("values", {})
        self.record.frames.append(int(values.get(FRAME_KEY, -1)))
        self.record.seqs.append(seq)
        self.record.latencies.append(received - message["ts"])


@dataclass
class Target:
    """Where the sockets connect and how they log in."""

    host: str
    port: int
    path: str
    cookie: str
    topics: list[str]


class Clients:
    """The sockets of one client process."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.sockets: list[Dashboard] = []
        self.subscribe = orjson.dumps({"type": "subscribe", "topics": target.topics})
        self.cpu_at_start = 0.0
        self.wall_at_start = 0.0

    async def connect(self, count: int) -> dict[str, Any]:
        """Open count more sockets, CONNECT_CONCURRENCY at a time, each subscribed (its snapshot received).

        How many failed and why (the first reasons).
        """
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        failures: list[str] = []

        async def one() -> None:
            async with gate:
                opened = loop.create_future()
                request = handshake(self.target.host, self.target.port, self.target.path, self.target.cookie)
                try:
                    _, protocol = await loop.create_connection(
                        lambda: Dashboard(request, self.subscribe, opened), self.target.host, self.target.port
                    )
                    await asyncio.wait_for(opened, 60)
                    self.sockets.append(protocol)
                except (OSError, TimeoutError) as exc:
                    failures.append(repr(exc))

        await asyncio.gather(*(one() for _ in range(count)))
        return {"connected": count - len(failures), "failed": len(failures), "reasons": failures[:3]}

    def start(self) -> None:
        """A new phase: forget what was recorded, start the CPU clock."""
        for socket in self.sockets:
            socket.record = Record()
        self.cpu_at_start, self.wall_at_start = time.process_time(), time.monotonic()

    def report(self) -> dict[str, Any]:
        """Every socket's record of the phase, and this process's CPU seconds and wall seconds since start()."""
        return {
            "cpu": time.process_time() - self.cpu_at_start,
            "wall": time.monotonic() - self.wall_at_start,
            "sockets": [
                {
                    "frames": socket.record.frames.tobytes(),
                    "seqs": socket.record.seqs.tobytes(),
                    "latencies": socket.record.latencies.tobytes(),
                    "snapshots": socket.record.snapshots,
                    "gaps": socket.record.gaps,
                    "skipped": socket.record.skipped,
                    "stale": socket.record.stale,
                    "errors": socket.record.errors,
                    "close_code": socket.close_code,
                    "lost": socket.lost,
                }
                for socket in self.sockets
            ],
        }

    def close(self) -> None:
        for socket in self.sockets:
            if socket.transport is not None and not socket.lost:
                socket.transport.close()


async def _serve(pipe: Connection, target: Target) -> None:
    """Answer the orchestrator's commands until "quit".

    The pipe is waited on in a thread, so the sockets are read meanwhile; it stays
    a blocking pipe (loop.add_reader would make it non-blocking, and a report of
    megabytes would then fail to send).
    """
    loop = asyncio.get_running_loop()
    clients = Clients(target)
    while True:
        command, *arguments = await loop.run_in_executor(None, pipe.recv)
        if command == "connect":
            pipe.send(await clients.connect(*arguments))
        elif command == "start":
            clients.start()
            pipe.send(None)
        elif command == "count":
            pipe.send(sum(len(socket.record.frames) + len(socket.record.snapshots) for socket in clients.sockets))
        elif command == "report":
            pipe.send(clients.report())
        elif command == "quit":
            clients.close()
            await asyncio.sleep(0.2)  # let the transports send their FIN
            pipe.send(None)
            return


def serve(pipe: Connection, target: Target) -> None:
    """A client process's body (multiprocessing target)."""
    runner = uvloop.run if uvloop is not None else asyncio.run
    runner(_serve(pipe, target))
