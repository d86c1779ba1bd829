"""The SSRF guard at connection time, as an httpcore network backend under an httpx transport.

httpcore asks its network backend to connect_tcp(host, port) with the URL's
host. GuardedBackend resolves that name once, refuses if any address it
resolves to is forbidden (a name answering with a public and a private address
is how DNS rebinding is staged), and connects to the checked address itself, so
no second lookup can swap it. httpcore starts TLS afterwards with the URL's host
as server_hostname: SNI and certificate verification still use the name.

The backend also holds the deadline of the whole exchange: every read and write
gets what is left of it, so a receiver that trickles a byte at a time is cut off.
"""

import contextlib
import functools
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpcore
import httpx

from apps.core.outbound.addresses import IPAddress, resolve
from apps.core.outbound.errors import OutboundBlocked, OutboundError, OutboundTimeout
from apps.core.outbound.urls import safe_url

Judge = Callable[[IPAddress], str | None]  # why an address is refused, or None
_WHILE = {
    httpcore.ConnectTimeout: "connecting",
    httpcore.WriteTimeout: "sending the request",
    httpcore.ReadTimeout: "waiting for the response",
}


class _AddressRefusedError(Exception):
    """An address was refused; the transport, which knows the URL, turns it into OutboundBlocked."""


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying context for all requests, since building one reads the whole CA bundle (~50 ms).

    httpx's default trust: certifi's bundle, or SSL_CERT_FILE / SSL_CERT_DIR when set (a private CA).
    """
    return httpx.create_ssl_context()


class GuardedBackend(httpcore.NetworkBackend):
    """Resolve, check every address, connect to a checked one; one backend per call (its policy and deadline)."""

    def __init__(self, *, judge: Judge, deadline: float) -> None:
        self._judge = judge
        self._deadline = deadline
        self._system = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = resolve(host, port)
        except (OSError, UnicodeError) as error:  # fail closed: no address, no connection
            raise httpcore.ConnectError(f"{host} does not resolve ({error})") from error
        for address in addresses:
            if reason := self._judge(address):
                raise _AddressRefusedError(reason)
        # Like socket.create_connection: the next address when one refuses, the last one's error if all do.
        for address in addresses[:-1]:
            with contextlib.suppress(httpcore.ConnectError):
                return self._connect(address, port, timeout, local_address, socket_options)
        return self._connect(addresses[-1], port, timeout, local_address, socket_options)

    def _connect(
        self,
        address: IPAddress,
        port: int,
        timeout: float | None,
        local_address: str | None,
        socket_options: Iterable[Any] | None,
    ) -> httpcore.NetworkStream:
        budget = _budget(self._deadline, timeout, httpcore.ConnectTimeout)
        stream = self._system.connect_tcp(str(address), port, budget, local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _budget(self._deadline, timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _budget(self._deadline, timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        budget = _budget(self._deadline, timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, budget), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


def _budget(deadline: float, timeout: float | None, expired: type[Exception]) -> float:
    """The operation's own timeout or what is left of the exchange's, whichever is shorter."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the time limit of the whole exchange is used up")
    return left if timeout is None else min(timeout, left)


class GuardedTransport(httpx.BaseTransport):
    """httpx over an httpcore pool that connects through GuardedBackend.

    httpx.HTTPTransport cannot be given a network backend, hence this adapter;
    it also turns httpcore's exceptions into the Outbound* family.
    """

    def __init__(self, backend: GuardedBackend) -> None:
        self._pool = httpcore.ConnectionPool(ssl_context=tls_context(), network_backend=backend)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        outgoing = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _translated(url):
            response = self._pool.handle_request(outgoing)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream, url),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes], url: httpx.URL) -> None:
        self._stream = stream
        self._url = url

    def __iter__(self) -> Iterator[bytes]:
        with _translated(self._url):
            yield from self._stream

    def close(self) -> None:
        if hasattr(self._stream, "close"):
            self._stream.close()


@contextlib.contextmanager
def _translated(url: httpx.URL) -> Iterator[None]:
    try:
        yield
    except _AddressRefusedError as refused:
        raise OutboundBlocked(safe_url(url), str(refused)) from None
    except httpcore.TimeoutException as error:
        raise OutboundTimeout(safe_url(url), f"timed out {_WHILE.get(type(error), 'waiting')}") from error
    except (httpcore.NetworkError, httpcore.ProtocolError) as error:
        raise OutboundError(safe_url(url), str(error) or type(error).__name__) from error
