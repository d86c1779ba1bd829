"""HTTP/1.1 load generators on keep-alive connections, for a fixed time.

hammer() is closed loop: N clients, each sending its next request as soon as the
last answer is read. pace() is open loop: requests scheduled at a fixed rate, spread
over N connections, each request's latency counted from when it was due (so that a
slow answer delaying the next send on its connection is not hidden).

Written on asyncio streams (uvloop when installed) with the request bytes prepared
once (or built per request by a callable, e.g. to sign each one) and the answer
parsed just enough to read it whole (status line, Content-Length or chunked body),
so that it costs a small fraction of what a Django request costs: the figures say
how much of its core it used (`client_cpu`), to show that it was not the bottleneck.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

try:
    import uvloop
except ImportError:  # pragma: no cover - the portal's requirements install it with uvicorn[standard]
    uvloop = None


@dataclass
class Load:
    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    client_cpu: float = 0.0  # CPU seconds of this process per wall second (1.0: a whole core)
    statuses: dict[int, int] = field(default_factory=dict)

    def count(self, status: int, started: float) -> None:
        self.latencies_ms.append((time.perf_counter() - started) * 1000)
        self.requests += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.errors += status != 200

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


Request = bytes | Callable[[], bytes]  # the same bytes every time, or a new request per call


def request_bytes(
    path: str, host: str, headers: dict[str, str] | None = None, *, method: str = "GET", body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Accept: application/json"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method != "GET":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    headers = head.lower()
    marker = headers.find(b"\r\ncontent-length:")
    if marker >= 0:
        end = headers.index(b"\r\n", marker + 2)
        await reader.readexactly(int(headers[marker + 17 : end]))
    elif b"\r\ntransfer-encoding: chunked" in headers:
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    return status


async def _client(host: str, port: int, request: Request, until: float, load: Load, record: bool) -> None:
    build = request if callable(request) else None  # decided once: prepared bytes cost nothing per request
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(build() if build else request)
            status = await _read_answer(reader)
            if record:
                load.count(status, started)
    finally:
        writer.close()


async def _run(host: str, port: int, request: Request, clients: int, seconds: float, record: bool) -> Load:
    load = Load()
    cpu, started = time.process_time(), time.perf_counter()
    until = started + seconds
    await asyncio.gather(*(_client(host, port, request, until, load, record) for _ in range(clients)))
    load.seconds = time.perf_counter() - started
    load.client_cpu = (time.process_time() - cpu) / load.seconds
    return load


def hammer(host: str, port: int, request: Request, *, clients: int, seconds: float, record: bool = True) -> Load:
    """`clients` connections sending `request` back to back for `seconds`; what they measured."""
    runner = uvloop.run if uvloop is not None else asyncio.run
    return runner(_run(host, port, request, clients, seconds, record))


async def _paced_client(
    host: str, port: int, request: Callable[[], bytes], due: list[float], load: Load, late_ms: list[float]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for at in due:
            wait = at - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            else:  # the previous answer on this connection came after this request was due
                late_ms.append(-wait * 1000)
            writer.write(request())
            load.count(await _read_answer(reader), at)  # from when it was due, not from when it could be sent
    finally:
        writer.close()


async def _run_paced(host: str, port: int, request: Callable[[], bytes], rate: float, seconds: float,
                     connections: int, late_ms: list[float]) -> Load:  # fmt: skip
    load = Load()
    total = max(1, round(rate * seconds))
    cpu, started = time.process_time(), time.perf_counter()
    start = started + 0.5  # every connection is open before the first request is due
    due = [start + n / rate for n in range(total)]
    await asyncio.gather(
        *(_paced_client(host, port, request, due[first::connections], load, late_ms) for first in range(connections))
    )
    load.seconds = time.perf_counter() - start
    load.client_cpu = (time.process_time() - cpu) / (time.perf_counter() - started)
    return load


def pace(
    host: str, port: int, request: Callable[[], bytes], *, rate: float, seconds: float, connections: int
) -> tuple[Load, list[float]]:
    """rate * seconds requests, due at a steady `rate` per second, request n on connection n % connections.

    What they measured (latency from each request's due time), and by how many ms each
    request that could not be sent on time was late (its connection still waiting for an answer).
    """
    runner = uvloop.run if uvloop is not None else asyncio.run
    late_ms: list[float] = []
    return runner(_run_paced(host, port, request, rate, seconds, connections, late_ms)), late_ms
