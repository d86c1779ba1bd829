"""Outbound HTTP: the one way the portal calls other systems, behind an SSRF guard.

Alert webhooks, Slack, health checks of external endpoints and REST hooks send
with request(); forms and models check the URLs they store with
validate_outbound_url(). A destination is refused when any address its host
resolves to is loopback, private, shared (CGNAT), link-local, reserved,
multicast, unspecified or a cloud metadata address, in IPv4 or any IPv6 form
that carries one (addresses.py has the table), unless the call passes
allow_internal=True (an admin marked the destination internal) or the address
is in OUTBOUND_INTERNAL_NETWORKS. Metadata, unspecified and multicast addresses
are refused even then. The check that counts runs when connecting
(transport.py): the address checked is the address connected to.

Why httpx with a network backend of our own rather than requests-hardened (1.3.0):
requests-hardened does connect to the address it checked, keeps Host and SNI on
the name, and a session that follows redirects passes each hop through its
check. But it checks only the first address the resolver returns, so a name
answering with a public and a private address passes whenever the public one
comes first; its decision is a fixed module-level list with one switch,
allow_loopback, leaving no way to add our ranges, a per-call allow_internal for
private networks or OUTBOUND_INTERNAL_NETWORKS short of patching its private
module; and requests has per-socket-operation timeouts only, so a receiver
sending a byte at a time is never cut off. httpcore, httpx's engine, has a
public seam for exactly this: a NetworkBackend's connect_tcp() gets the URL's
host and returns the connected stream, and TLS is started on that stream with
the URL's host as server name. httpx was already a (test) dependency.
"""

from apps.core.outbound.client import OutboundResponse, request
from apps.core.outbound.errors import OutboundBlocked, OutboundError, OutboundTimeout
from apps.core.outbound.urls import validate_outbound_url

__all__ = [
    "OutboundBlocked",
    "OutboundError",
    "OutboundResponse",
    "OutboundTimeout",
    "request",
    "validate_outbound_url",
]
