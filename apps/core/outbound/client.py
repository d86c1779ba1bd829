"""request(): one outbound HTTP exchange through the SSRF guard."""

import codecs
import functools
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

import httpx
import structlog
from django.conf import settings

from apps.core.outbound.addresses import refusal_reason
from apps.core.outbound.errors import OutboundBlocked, OutboundError
from apps.core.outbound.transport import GuardedBackend, GuardedTransport
from apps.core.outbound.urls import parse, safe_url

DEFAULT_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
MAX_REDIRECTS = 5
USER_AGENT = "opsportal"

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class OutboundResponse:
    """What came back, whatever the status; body is cut at the call's max_body_bytes (truncated says so)."""

    url: str  # where the answer came from (after any redirects), without query string: safe to log
    status: int
    headers: Mapping[str, str]  # lower-case names; a repeated header's values joined with ", "
    body: bytes  # as sent: the client asks for no compression, so a small reply cannot inflate
    truncated: bool
    elapsed: float  # seconds, redirects included
    address: str  # the IP address connected to
    encoding: str
    certificate_expires: datetime | None = None  # HTTPS: when the server's (verified) certificate runs out

    @property
    def text(self) -> str:
        return self.body.decode(self.encoding, errors="replace")


def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    json: object = None,
    allow_internal: bool = False,
    follow_redirects: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> OutboundResponse:
    """Send one request to url and read at most max_body_bytes of the answer.

    Every HTTP status is a result: a 3xx too, unless follow_redirects (at most
    MAX_REDIRECTS hops, each checked like the first). allow_internal lets the
    request reach loopback and private networks (an admin marked the
    destination internal); OUTBOUND_INTERNAL_NETWORKS are allowed to every call.
    timeout bounds the whole exchange, connecting included.

    Raises OutboundBlocked for a refused destination, OutboundTimeout, and
    OutboundError for any other failure to get a response.
    """
    started = time.monotonic()
    judge = functools.partial(
        refusal_reason, allow_internal=allow_internal, internal_networks=settings.OUTBOUND_INTERNAL_NETWORKS
    )
    client = httpx.Client(
        transport=GuardedTransport(GuardedBackend(judge=judge, deadline=started + timeout)),
        timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout)),
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        # A proxy from HTTP_PROXY and friends would be connected to instead of the
        # checked address. httpx skips them when given a transport; this says so for good.
        trust_env=False,
    )
    try:
        with client:
            outgoing = client.build_request(method, parse(url), headers=headers, content=content, json=json)
            result = _exchange(client, outgoing, follow_redirects, max_body_bytes, started)
    except OutboundError as error:
        logger.warning(
            "outbound_request_failed",
            method=method,
            url=error.url,
            blocked=isinstance(error, OutboundBlocked),
            error=type(error).__name__,
            reason=error.reason,
        )
        raise
    logger.info(
        "outbound_request",
        method=method,
        url=result.url,
        status=result.status,
        address=result.address,
        elapsed_ms=round(result.elapsed * 1000),
        truncated=result.truncated,
    )
    return result


def _exchange(
    client: httpx.Client, outgoing: httpx.Request, follow_redirects: bool, max_body_bytes: int, started: float
) -> OutboundResponse:
    for _hop in range(MAX_REDIRECTS + 1):
        try:
            response = client.send(outgoing, stream=True)
        except httpx.HTTPError as error:  # e.g. a Location header that is no URL
            raise OutboundError(safe_url(outgoing.url), str(error)) from error
        try:
            if not (follow_redirects and response.next_request):
                return _result(response, max_body_bytes, started)
        finally:
            response.close()  # a hop's body is never read: it could be endless
        outgoing = response.next_request
        parse(outgoing.url)  # each hop meets the URL rules; its address is checked when connecting
    raise OutboundError(safe_url(outgoing.url), f"more than {MAX_REDIRECTS} redirects")


def _result(response: httpx.Response, max_body_bytes: int, started: float) -> OutboundResponse:
    stream = response.extensions["network_stream"]
    address = stream.get_extra_info("server_addr")[0]  # before reading closes it
    expires = _certificate_expires(stream.get_extra_info("ssl_object"))
    body = bytearray()
    for chunk in response.iter_raw():
        body += chunk
        if len(body) > max_body_bytes:
            break
    return OutboundResponse(
        url=safe_url(response.url),
        status=response.status_code,
        headers=MappingProxyType(dict(response.headers)),
        body=bytes(body[:max_body_bytes]),
        truncated=len(body) > max_body_bytes,
        elapsed=time.monotonic() - started,
        address=address,
        encoding=_encoding(response.charset_encoding),
        certificate_expires=expires,
    )


def _certificate_expires(tls: ssl.SSLObject | None) -> datetime | None:
    certificate = tls.getpeercert() if tls is not None else None
    if not certificate or "notAfter" not in certificate:
        return None
    return datetime.fromtimestamp(ssl.cert_time_to_seconds(certificate["notAfter"]), tz=UTC)


def _encoding(charset: str | None) -> str:
    try:
        return codecs.lookup(charset or "utf-8").name
    except LookupError:
        return "utf-8"
