import ipaddress

import pytest

from apps.core.proxies import client_ip

PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        ("203.0.113.9", "1.2.3.4", "203.0.113.9"),  # untrusted peer: header ignored
        ("10.0.0.1", "", "10.0.0.1"),
        ("10.0.0.1", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.1", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # spoofed left part ignored
        ("10.0.0.1", "198.51.100.1, 10.0.0.5", "198.51.100.1"),  # a chain of proxies
        ("10.0.0.1", "10.0.0.7, 10.0.0.5", "10.0.0.7"),  # only proxies: the farthest one
        ("10.0.0.1", "garbage, 10.0.0.5", "10.0.0.5"),  # malformed: stop at the last trusted hop
        ("10.0.0.1", "198.51.100.1, not-an-ip", "10.0.0.1"),
        ("fd00::1", "2001:db8::7", "2001:db8::7"),
        ("::ffff:10.0.0.1", "198.51.100.1", "198.51.100.1"),  # IPv4-mapped proxy address
    ],
)
def test_the_client_is_the_right_most_address_that_is_not_a_trusted_proxy(peer, forwarded_for, expected):
    assert client_ip(peer, forwarded_for, PROXIES) == expected
