"""Which IP addresses outbound HTTP may connect to.

The decision is an explicit table, not ipaddress's is_private / is_global: those
flags change between Python patch releases and miss ranges that matter here (in
3.11, 100.64.0.0/10 and NAT64 are not "private", and a cloud metadata address is
only link-local to them). An address is allowed when it is in none of the ranges
below and, for IPv6, in global unicast (2000::/3); is_global is asked last, as a
second opinion that can only refuse. Forms that carry an IPv4 address inside an
IPv6 one are judged by the IPv4 address they carry.
"""

import ipaddress
import socket
from collections.abc import Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Instance metadata services hand out cloud credentials: never a destination,
# whatever allow_internal or OUTBOUND_INTERNAL_NETWORKS say.
METADATA = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, Oracle, OpenStack, DigitalOcean and most others
        "fd00:ec2::254",  # AWS over IPv6
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.170.23",  # AWS EKS Pod Identity
        "fd00:ec2::23",
        "100.100.100.200",  # Alibaba Cloud
        "169.254.0.23",  # Tencent Cloud
        "168.63.129.16",  # Azure platform endpoint: a public address, so no range below covers it
    )
)


def _table(*rows: tuple[str, str]) -> tuple[tuple[Network, str], ...]:
    return tuple((ipaddress.ip_network(network), label) for network, label in rows)


# Refused whatever the caller allows: no service of anyone's listens there.
NEVER = _table(
    ("0.0.0.0/8", "an unspecified address"),  # Linux connects 0.0.0.0 to the local host
    ("::/128", "an unspecified address"),
    ("224.0.0.0/4", "a multicast address"),
    ("ff00::/8", "a multicast address"),
    ("255.255.255.255/32", "a broadcast address"),
)

# Refused unless the call allows internal destinations or OUTBOUND_INTERNAL_NETWORKS lists them.
# The first matching row names the address, so narrower rows come first.
INTERNAL = _table(
    ("127.0.0.0/8", "a loopback address"),
    ("::1/128", "a loopback address"),
    ("10.0.0.0/8", "a private address"),
    ("172.16.0.0/12", "a private address"),
    ("192.168.0.0/16", "a private address"),
    ("fc00::/7", "a private (unique local) address"),
    ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
    ("169.254.0.0/16", "a link-local address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("192.0.0.0/24", "an IETF protocol address"),
    ("192.0.2.0/24", "a documentation address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("2001:db8::/32", "a documentation address"),
    ("3fff::/20", "a documentation address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("192.88.99.0/24", "a 6to4 relay address"),
    ("240.0.0.0/4", "a reserved address"),
    ("64:ff9b:1::/48", "a local-use NAT64 address"),
    ("100::/64", "a discard-only address"),
    ("2001::/32", "a Teredo tunnel address"),
    ("2001::/23", "an IETF protocol address"),
    ("5f00::/16", "a segment routing address"),
)
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated; :: and ::1 are matched above first
GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


def refusal_reason(
    address: IPAddress, *, allow_internal: bool = False, internal_networks: Sequence[Network] = ()
) -> str | None:
    """Why outbound HTTP must not connect to address ("127.0.0.1 is a loopback address"), or None when it may."""
    found = _classify(address)
    if found is None:
        return None
    never, label = found
    if not never and (allow_internal or _listed(address, internal_networks)):
        return None
    mapped = isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped
    return f"{f'::ffff:{mapped}' if mapped else address} is {label}"  # ::ffff:127.0.0.1, not ::ffff:7f00:1


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address host resolves to, in the resolver's order; OSError (or UnicodeError) when it does not resolve."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [ipaddress.ip_address(info[4][0]) for info in found if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not addresses:
        raise OSError(f"no IPv4 or IPv6 address for {host}")
    return list(dict.fromkeys(addresses))


def _classify(address: IPAddress) -> tuple[bool, str] | None:
    """(refused even when internal destinations are allowed, what it is), or None for a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        address = ipaddress.IPv6Address(int(address))  # fe80::1%eth0 is fe80::1, and equality counts the zone
    if address in METADATA:
        return True, "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _carrying("an IPv4-mapped address", address.ipv4_mapped, public_allowed=True)
    for network, label in NEVER:
        if address.version == network.version and address in network:
            return True, label
    for network, label in INTERNAL:
        if address.version == network.version and address in network:
            return False, label
    if isinstance(address, ipaddress.IPv6Address):
        carried = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address in NAT64:  # the translator may sit next to internal IPv4 hosts
            return _carrying("a NAT64 address", carried, public_allowed=False)
        if address in IPV4_COMPATIBLE:
            return _carrying("an IPv4-compatible address", carried, public_allowed=False)
        if address.sixtofour is not None:
            return _carrying("a 6to4 address", address.sixtofour, public_allowed=True)
        if address not in GLOBAL_UNICAST:
            return False, "a reserved address"
    if not address.is_global:
        return False, "not globally routable"
    return None


def _carrying(kind: str, carried: ipaddress.IPv4Address, *, public_allowed: bool) -> tuple[bool, str] | None:
    found = _classify(carried)
    if found is None:
        return None if public_allowed else (False, f"{kind} carrying {carried}")
    never, label = found
    return never, f"{kind} carrying {carried}, {label}"


def _listed(address: IPAddress, networks: Sequence[Network]) -> bool:
    # ::ffff:10.1.2.3 reaches the same host as 10.1.2.3, so 10.0.0.0/8 lists both.
    forms = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        forms.append(address.ipv4_mapped)
    return any(form.version == network.version and form in network for form in forms for network in networks)
