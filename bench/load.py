"""A closed-loop HTTP/1.1 load generator: N clients on keep-alive connections, each sending its next request
as soon as the last answer is read, for a fixed time.

Written on asyncio streams (uvloop when installed) with the request bytes prepared
once and the answer parsed just enough to read it whole (status line, Content-Length
or chunked body), so that it costs a small fraction of what a Django request costs:
the figures say how much of its core it used (`client_cpu`), to show that it was
not the bottleneck.
"""

import asyncio
import time
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

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def request_bytes(path: str, host: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Accept: application/json"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


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


async def _client(host: str, port: int, request: bytes, until: float, load: Load, record: bool) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            status = await _read_answer(reader)
            if record:
                load.latencies_ms.append((time.perf_counter() - started) * 1000)
                load.requests += 1
                load.statuses[status] = load.statuses.get(status, 0) + 1
                load.errors += status != 200
    finally:
        writer.close()


async def _run(host: str, port: int, request: bytes, clients: int, seconds: float, record: bool) -> Load:
    load = Load()
    cpu, started = time.process_time(), time.perf_counter()
    until = started + seconds
    await asyncio.gather(*(_client(host, port, request, until, load, record) for _ in range(clients)))
    load.seconds = time.perf_counter() - started
    load.client_cpu = (time.process_time() - cpu) / load.seconds
    return load


def hammer(host: str, port: int, request: bytes, *, clients: int, seconds: float, record: bool = True) -> Load:
    """`clients` connections sending `request` back to back for `seconds`; what they measured."""
    runner = uvloop.run if uvloop is not None else asyncio.run
    return runner(_run(host, port, request, clients, seconds, record))
