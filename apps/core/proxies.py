"""Which client sent a request, when proxies stand in between."""

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip().strip("[]")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return getattr(address, "ipv4_mapped", None) or address


def is_trusted(peer: str, proxies: Sequence[Network]) -> bool:
    address = _address(peer)
    return address is not None and _within(address, proxies)


def _within(address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Sequence[Network]) -> bool:
    return any(address.version == network.version and address in network for network in proxies)


def client_ip(peer: str, forwarded_for: str, proxies: Sequence[Network]) -> str:
    """The client's address: X-Forwarded-For is read right to left, and only while each hop is a trusted proxy.

    A client can write anything into X-Forwarded-For, but each trusted proxy
    appends the address it saw, so the right-most untrusted entry is the client.
    """
    if not is_trusted(peer, proxies) or not forwarded_for:
        return peer
    client = peer
    for hop in reversed(forwarded_for.split(",")):
        address = _address(hop)
        if address is None:
            break  # malformed: nothing further left can be trusted
        client = str(address)
        if not _within(address, proxies):
            break
    return client
