"""URL rules shared by the client (each request and each redirect hop) and the form validator.

Both parse with httpx.URL, the parser that sends the request: two parsers that
disagree about a URL's host are a classic way around an SSRF check.
"""

import ipaddress
import re
import socket

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError

from apps.core.outbound.addresses import IPAddress, refusal_reason, resolve
from apps.core.outbound.errors import OutboundBlocked
from apps.core.redaction import redact

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
# What the C resolver reads as IPv4 besides the dotted quad: 127.1, 0177.0.0.1, 2130706433, 0x7f000001.
LEGACY_IPV4 = re.compile(r"[0-9a-fx.]+", re.IGNORECASE)


def parse(url: str | httpx.URL) -> httpx.URL:
    """url parsed, or OutboundBlocked: only http and https, no credentials, a host."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise OutboundBlocked(redact(str(url).split("?")[0]), f"not a valid URL ({error})") from None
    if parsed.scheme not in SCHEMES:
        raise OutboundBlocked(safe_url(parsed), f"only http and https URLs are allowed, not {parsed.scheme!r}")
    if parsed.userinfo:
        raise OutboundBlocked(safe_url(parsed), "URLs with credentials (user:password@) are not allowed")
    if not parsed.host:
        raise OutboundBlocked(safe_url(parsed), "the URL has no host")
    return parsed


def safe_url(url: httpx.URL) -> str:
    """scheme://host:port/..., for logs and errors.

    Credentials, query strings and paths may all hold secrets (a Slack incoming
    webhook's token is its path), so only where the request went is kept.
    """
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = url.port or DEFAULT_PORTS.get(url.scheme)
    path = "/..." if url.path not in ("", "/") else "/"
    return redact(f"{url.scheme}://{host}{f':{port}' if port else ''}{path}")


def literal_address(host: str) -> IPAddress | None:
    """host as an IP address in any spelling the resolver accepts, or None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not LEGACY_IPV4.fullmatch(host):
        return None  # inet_aton stops at a space and ignores the rest: give it nothing but what it parses
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def validate_outbound_url(value: str, *, allow_internal: bool = False) -> None:
    """Django validator for a URL the portal will send requests to.

    Refuses what the client would refuse: other schemes, credentials, and a host
    that is, or resolves to, a forbidden address (any of them). It is advice to
    whoever types the URL: the name may resolve elsewhere by the time a request
    goes out, which is why the client checks again the address it connects to.
    """
    try:
        url = parse(value)
    except OutboundBlocked as blocked:
        raise ValidationError(
            "This URL cannot be used: %(reason)s.", code="outbound_url", params={"reason": blocked.reason}
        ) from None
    literal = literal_address(url.host)
    try:
        addresses = [literal] if literal is not None else resolve(url.host, url.port or DEFAULT_PORTS[url.scheme])
    except (OSError, UnicodeError):
        raise ValidationError(
            "The host name %(host)s does not resolve.", code="outbound_unresolved", params={"host": url.host}
        ) from None
    for address in addresses:
        reason = refusal_reason(
            address, allow_internal=allow_internal, internal_networks=settings.OUTBOUND_INTERNAL_NETWORKS
        )
        if reason:
            raise ValidationError(
                "%(host)s is not an allowed destination: %(reason)s.",
                code="outbound_blocked",
                params={"host": url.host, "reason": reason},
            )
