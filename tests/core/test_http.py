"""The outbound HTTP client and its SSRF guard, against real HTTP(S) servers on loopback.

Only DNS is faked (socket.getaddrinfo): names under .test answer what a test
says. Connections are recorded, and any to an address off this machine is
refused on the spot, so no test leaves the machine.
"""

import errno
import ipaddress
import logging
import shutil
import socket
import time
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ValidationError

from apps.core import outbound
from apps.core.outbound import OutboundBlocked, OutboundError, OutboundTimeout, validate_outbound_url
from apps.core.outbound.addresses import refusal_reason
from apps.core.outbound.transport import tls_context
from tests.receiver import Answer, Receiver, Request, self_signed_certificate

PUBLIC = "93.184.216.34"
HUGE = 3 * 1024 * 1024


def routed(receiver: Receiver) -> Receiver:
    """The paths these tests ask for; any other is a 404."""
    receiver.always(Answer(404, body=b"no such path"))
    receiver.always(Answer(body=b"ok"), path="/ok")
    receiver.always(redirect, path="/redirect")
    receiver.always(Answer(302, headers={"Location": "/loop"}, body=b"again"), path="/loop")
    receiver.always(Answer(body=b"late", delay=5), path="/slow")
    receiver.always(Answer(body=b"x" * 50, drip=0.1), path="/drip")  # each read is quick, the whole takes 5 s
    receiver.always(Answer(body=b"x" * HUGE), path="/huge")
    return receiver


def redirect(request: Request) -> Answer:
    """/redirect?to=<url>: a 302 to that URL."""
    return Answer(302, headers={"Location": parse_qs(urlsplit(request.path).query)["to"][0]}, body=b"moved")


@pytest.fixture
def server(receiver) -> Receiver:
    return routed(receiver)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for service.test (and no IP address)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    return self_signed_certificate(tmp_path_factory.mktemp("tls"), "service.test")


@pytest.fixture
def tls_server(start_receiver, certificate) -> Receiver:
    return routed(start_receiver(tls=certificate))


@pytest.fixture
def trusted(certificate):
    """The client trusts the test certificate, through SSL_CERT_FILE as an operator would."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSL_CERT_FILE", str(certificate[0]))
        tls_context.cache_clear()  # the context is built once per process
        yield
    tls_context.cache_clear()


@pytest.fixture
def dns(monkeypatch):
    """dns.add(name, answer, later_answer...): the nth lookup of name gets the nth answer (the last one after)."""
    records: dict[str, tuple[list[str], ...]] = {}
    lookups: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in records:
            return real(host, port, *args, **kwargs)
        answers = records[host]
        answer = answers[min(lookups.count(host), len(answers) - 1)]
        lookups.append(host)
        if not answer:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [_address_info(address, port) for address in answer]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return SimpleNamespace(add=lambda name, *answers: records.__setitem__(name, answers), lookups=lookups)


def _address_info(address: str, port: int) -> tuple:
    if ipaddress.ip_address(address).version == 4:
        return socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port)
    return socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port, 0, 0)


@pytest.fixture(autouse=True)
def connects(monkeypatch):
    """Every address a socket connects to; one off this machine is refused instead of tried."""
    seen: list[str] = []
    real = socket.socket.connect

    def connect(sock, address):
        seen.append(address[0])
        if address[0] != "127.0.0.1":
            raise ConnectionRefusedError(errno.ECONNREFUSED, "refused by the test")
        return real(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


# ---------------------------------------------------------------- the address decision

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "IPv4-mapped address carrying 127.0.0.1, a loopback"),
    ("10.0.0.5", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("fd12:3456::1", "private"),
    ("100.64.1.1", "carrier-grade NAT"),
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("169.254.169.254", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("192.0.2.1", "documentation"),
    ("2001:db8::1", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("64:ff9b::7f00:1", "NAT64 address carrying 127.0.0.1, a loopback"),
    ("64:ff9b:1::a00:5", "NAT64"),
    ("::7f00:1", "IPv4-compatible address carrying 127.0.0.1"),
    ("2002:a00:5::1", "6to4 address carrying 10.0.0.5, a private"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("4000::1", "reserved"),
]


@pytest.mark.parametrize(("address", "why"), REFUSED)
def test_non_public_addresses_are_refused_with_what_they_are(address, why):
    reason = refusal_reason(ipaddress.ip_address(address))

    assert reason is not None and why in reason


@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address):
    assert refusal_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("address", ["127.0.0.1", "::ffff:127.0.0.1", "10.0.0.5", "100.64.1.1", "fe80::1", "fc00::1"])
def test_internal_addresses_are_allowed_when_the_destination_is_marked_internal(address):
    assert refusal_reason(ipaddress.ip_address(address), allow_internal=True) is None


@pytest.mark.parametrize("address", ["169.254.169.254", "::ffff:169.254.169.254", "fd00:ec2::254", "0.0.0.0", "::"])
def test_metadata_and_unspecified_addresses_are_refused_even_to_internal_destinations(address):
    internal = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]

    assert refusal_reason(ipaddress.ip_address(address), allow_internal=True, internal_networks=internal)


def test_a_listed_network_allows_its_addresses_and_their_ipv4_mapped_form_only():
    listed = [ipaddress.ip_network("10.0.0.0/8")]

    assert refusal_reason(ipaddress.ip_address("10.1.2.3"), internal_networks=listed) is None
    assert refusal_reason(ipaddress.ip_address("::ffff:10.1.2.3"), internal_networks=listed) is None
    assert refusal_reason(ipaddress.ip_address("192.168.1.1"), internal_networks=listed)
    assert refusal_reason(ipaddress.ip_address("64:ff9b::a01:203"), internal_networks=listed)


# ---------------------------------------------------------------- requests to a loopback receiver


def test_a_loopback_receiver_is_refused_by_default(server, connects):
    with pytest.raises(OutboundBlocked, match=r"127\.0\.0\.1 is a loopback address"):
        outbound.request("GET", server.url("/ok"))

    assert connects == []
    assert server.requests() == []


def test_a_destination_marked_internal_reaches_the_loopback_receiver(server):
    response = outbound.request("GET", server.url("/ok"), allow_internal=True)

    assert response.status == 200
    assert response.body == b"ok"
    assert response.text == "ok"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.address == "127.0.0.1"
    assert response.truncated is False


def test_outbound_internal_networks_let_a_listed_network_through(server, settings):
    settings.OUTBOUND_INTERNAL_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]

    assert outbound.request("GET", server.url("/ok")).status == 200


def test_outbound_internal_networks_leave_other_networks_refused(server, settings):
    settings.OUTBOUND_INTERNAL_NETWORKS = [ipaddress.ip_network("10.0.0.0/8")]

    with pytest.raises(OutboundBlocked):
        outbound.request("GET", server.url("/ok"))


RESOLVER_SPELLINGS = ["127.1", "2130706433", "0x7f000001", "0x7f.1"]


@pytest.mark.parametrize("host", [*RESOLVER_SPELLINGS, "0177.0.0.1", "[::ffff:127.0.0.1]", "127.0.0.1"])
def test_every_spelling_of_loopback_is_refused_when_connecting(host, server, connects):
    with pytest.raises(OutboundBlocked):
        outbound.request("GET", server.url("/ok", host=host))

    assert connects == []
    assert server.requests() == []


@pytest.mark.parametrize("host", RESOLVER_SPELLINGS)
def test_those_spellings_do_reach_loopback_so_the_guard_is_what_refuses_them(host, server):
    assert outbound.request("GET", server.url("/ok", host=host), allow_internal=True).address == "127.0.0.1"


@pytest.mark.parametrize(
    "host", ["[::1]", "169.254.169.254", "10.0.0.5", "100.64.1.1", "[64:ff9b::7f00:1]", "0.0.0.0", "[fd00:ec2::254]"]
)
def test_internal_destinations_are_refused_before_any_connection(host, connects):
    with pytest.raises(OutboundBlocked, match=" is "):
        outbound.request("POST", f"http://{host}:8080/hook", json={"alert": "x"})

    assert connects == []


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://0.0.0.0:80/"])
def test_metadata_and_unspecified_addresses_are_refused_even_when_marked_internal(url, connects):
    with pytest.raises(OutboundBlocked):
        outbound.request("GET", url, allow_internal=True)

    assert connects == []


# ---------------------------------------------------------------- DNS: every address checked, the checked one pinned


@pytest.mark.parametrize("answer", [[PUBLIC, "10.0.0.5"], ["10.0.0.5", PUBLIC]])
def test_a_name_resolving_to_a_public_and_a_private_address_is_refused(answer, dns, connects):
    dns.add("mixed.test", answer)

    with pytest.raises(OutboundBlocked, match=r"10\.0\.0\.5 is a private address"):
        outbound.request("GET", "https://mixed.test/hook")

    assert connects == []


def test_the_address_connected_to_is_the_one_checked_not_a_second_lookup(dns, connects, server):
    dns.add("rebind.test", [PUBLIC], ["127.0.0.1"])  # a rebinding name: public first, loopback after

    with pytest.raises(OutboundError) as refused:
        outbound.request("GET", server.url("/ok", host="rebind.test"))

    assert not isinstance(refused.value, OutboundBlocked)  # the public address was allowed, and then refused us
    assert dns.lookups == ["rebind.test"]
    assert connects == [PUBLIC]
    assert server.requests() == []


def test_a_name_is_resolved_once_and_sent_as_the_host_header(dns, connects, server):
    dns.add("service.test", ["127.0.0.1"])

    response = outbound.request("GET", server.url("/ok", host="service.test"), allow_internal=True)

    assert response.address == "127.0.0.1"
    assert dns.lookups == ["service.test"]
    assert connects == ["127.0.0.1"]
    assert [(r.path, r.headers["host"]) for r in server.requests()] == [("/ok", f"service.test:{server.port}")]


def test_a_name_that_does_not_resolve_fails_closed_with_a_clear_error(dns, connects):
    dns.add("gone.test", [])

    with pytest.raises(OutboundError, match=r"gone\.test does not resolve"):
        outbound.request("GET", "https://gone.test/hook", allow_internal=True)

    assert connects == []


# ---------------------------------------------------------------- redirects


def test_a_redirect_is_not_followed_by_default(server, connects):
    target = "http://169.254.169.254/latest/meta-data/"

    response = outbound.request("GET", server.url(f"/redirect?to={target}"), allow_internal=True)

    assert response.status == 302
    assert response.headers["location"] == target
    assert connects == ["127.0.0.1"]


@pytest.mark.parametrize(
    ("target", "why"),
    [("http://169.254.169.254/latest/meta-data/", "cloud metadata"), ("http://[::1]:9/", "loopback")],
)
def test_a_followed_redirect_to_a_forbidden_address_is_refused(target, why, server, settings, connects):
    settings.OUTBOUND_INTERNAL_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]  # the first hop only

    with pytest.raises(OutboundBlocked, match=why):
        outbound.request("GET", server.url(f"/redirect?to={target}"), follow_redirects=True)

    assert connects == ["127.0.0.1"]


def test_a_followed_redirect_to_a_name_resolving_privately_is_refused(server, settings, dns, connects):
    settings.OUTBOUND_INTERNAL_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    dns.add("intranet.test", ["10.0.0.5"])

    with pytest.raises(OutboundBlocked, match=r"10\.0\.0\.5 is a private address"):
        outbound.request("GET", server.url("/redirect?to=http://intranet.test/admin"), follow_redirects=True)

    assert connects == ["127.0.0.1"]


def test_a_followed_redirect_to_an_allowed_place_is_followed(server):
    response = outbound.request("GET", server.url("/redirect?to=/ok"), allow_internal=True, follow_redirects=True)

    assert response.status == 200
    assert response.body == b"ok"
    assert response.url == server.url("/...")  # where it went, never what the path may hold
    assert [r.path for r in server.requests()] == ["/redirect?to=/ok", "/ok"]


def test_a_redirect_to_another_scheme_is_refused(server):
    with pytest.raises(OutboundBlocked, match="only http and https"):
        outbound.request(
            "GET", server.url("/redirect?to=file:///etc/passwd"), allow_internal=True, follow_redirects=True
        )


def test_redirects_are_followed_five_times_at_most(server):
    with pytest.raises(OutboundError, match="more than 5 redirects"):
        outbound.request("GET", server.url("/loop"), allow_internal=True, follow_redirects=True)

    assert len(server.requests()) == 6


# ---------------------------------------------------------------- time and size limits


def test_a_receiver_slower_than_the_timeout_is_cut_off(server):
    started = time.monotonic()

    with pytest.raises(OutboundTimeout, match="timed out waiting for the response"):
        outbound.request("GET", server.url("/slow"), allow_internal=True, timeout=0.5)

    assert time.monotonic() - started < 1.5


def test_a_receiver_trickling_bytes_is_cut_off_at_the_total_timeout(server):
    started = time.monotonic()

    with pytest.raises(OutboundTimeout):
        outbound.request("GET", server.url("/drip"), allow_internal=True, timeout=1.0)

    assert time.monotonic() - started < 2


def test_a_huge_body_is_cut_at_one_mebibyte_by_default(server):
    response = outbound.request("GET", server.url("/huge"), allow_internal=True)

    assert len(response.body) == 1024 * 1024
    assert response.truncated is True


def test_the_body_cap_can_be_set_per_call(server):
    assert len(outbound.request("GET", server.url("/huge"), allow_internal=True, max_body_bytes=1000).body) == 1000

    exact = outbound.request("GET", server.url("/ok"), allow_internal=True, max_body_bytes=2)
    assert (exact.body, exact.truncated) == (b"ok", False)


# ---------------------------------------------------------------- URLs, proxies, logs


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://user:hunter2@example.com/hook", "credentials"),
        ("https://:token@example.com/hook", "credentials"),
        ("ftp://example.com/file", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://127.0.0.1:70/_", "only http and https"),
        ("http:///no-host", "no host"),
    ],
)
def test_urls_with_credentials_or_other_schemes_are_refused(url, why, connects):
    with pytest.raises(OutboundBlocked, match=why) as refused:
        outbound.request("GET", url)

    assert "hunter2" not in str(refused.value)
    assert connects == []


def test_a_proxy_in_the_environment_does_not_bypass_the_guard(server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", server.url(""))
    monkeypatch.setenv("ALL_PROXY", server.url(""))
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(OutboundBlocked):
        outbound.request("GET", "http://10.0.0.5/hook")

    assert server.requests() == []


def test_log_lines_name_the_destination_without_its_path_or_query_string(server, caplog):
    with caplog.at_level(logging.INFO):
        outbound.request("GET", server.url("/ok?token=s3cret"), allow_internal=True)
        outbound.request("GET", server.url("/services/T0/B0/s3cretpath"), allow_internal=True)  # as Slack's are
        with pytest.raises(OutboundBlocked) as refused:
            outbound.request("GET", server.url("/ok?token=s3cret"))

    logged = " ".join(record.getMessage() for record in caplog.records)
    assert server.url("/...") in logged
    assert "outbound_request_failed" in logged
    assert "s3cret" not in logged  # nor in httpx's own lines
    assert "s3cret" not in str(refused.value)


# ---------------------------------------------------------------- TLS


def test_tls_is_verified_against_the_host_name_while_connecting_to_the_checked_address(
    tls_server, trusted, dns, connects
):
    dns.add("service.test", ["127.0.0.1"])

    response = outbound.request("GET", tls_server.url("/ok", host="service.test", scheme="https"), allow_internal=True)

    assert response.body == b"ok"
    assert connects == ["127.0.0.1"]
    assert tls_server.sni == ["service.test"]


def test_a_certificate_that_does_not_name_the_host_is_refused(tls_server, trusted):
    with pytest.raises(OutboundError, match="CERTIFICATE_VERIFY_FAILED"):
        outbound.request("GET", tls_server.url("/ok", scheme="https"), allow_internal=True)


def test_an_untrusted_certificate_is_refused(tls_server, dns):
    dns.add("service.test", ["127.0.0.1"])

    with pytest.raises(OutboundError, match="CERTIFICATE_VERIFY_FAILED"):
        outbound.request("GET", tls_server.url("/ok", host="service.test", scheme="https"), allow_internal=True)

    assert tls_server.sni == ["service.test"]


# ---------------------------------------------------------------- the form validator

LOOPBACK_SPELLINGS = ["127.1", "0177.0.0.1", "2130706433", "0x7f000001", "0x7f.1", "[::ffff:127.0.0.1]", "[::1]"]
FORBIDDEN = ["169.254.169.254", "10.0.0.5", "100.64.1.1", "[64:ff9b::7f00:1]", "0.0.0.0", "[fd00:ec2::254]"]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS + FORBIDDEN)
def test_the_validator_refuses_internal_hosts_in_any_spelling(host, connects):
    with pytest.raises(ValidationError):
        validate_outbound_url(f"https://{host}/hook")


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f000001"])
def test_the_validator_reads_legacy_ipv4_spellings_itself(host, dns):
    with pytest.raises(ValidationError, match=r"127\.0\.0\.1 is a loopback address"):
        validate_outbound_url(f"https://{host}/hook")

    assert dns.lookups == []


def test_the_validator_accepts_a_public_address_and_a_name_resolving_to_one(dns):
    dns.add("hooks.test", [PUBLIC])

    validate_outbound_url(f"https://{PUBLIC}/hook?token=x")
    validate_outbound_url("https://hooks.test/hook")


def test_the_validator_refuses_a_name_with_any_forbidden_address(dns):
    dns.add("mixed.test", [PUBLIC, "192.168.1.1"])

    with pytest.raises(ValidationError, match=r"192\.168\.1\.1 is a private address"):
        validate_outbound_url("https://mixed.test/hook")


def test_the_validator_says_when_a_name_does_not_resolve(dns):
    dns.add("gone.test", [])

    with pytest.raises(ValidationError, match=r"host name gone\.test does not resolve"):
        validate_outbound_url("https://gone.test/hook")


@pytest.mark.parametrize(
    "url", ["http://user:pass@example.com/", "ftp://example.com/", "javascript:alert(1)", "not a url", "http://"]
)
def test_the_validator_refuses_credentials_other_schemes_and_non_urls(url):
    with pytest.raises(ValidationError):
        validate_outbound_url(url)


def test_the_validator_allows_internal_hosts_when_marked_internal_but_never_metadata():
    validate_outbound_url("http://10.0.0.5:8080/hook", allow_internal=True)
    validate_outbound_url("http://127.1/hook", allow_internal=True)

    with pytest.raises(ValidationError, match="cloud metadata"):
        validate_outbound_url("http://169.254.169.254/", allow_internal=True)


def test_the_validator_follows_outbound_internal_networks(settings):
    settings.OUTBOUND_INTERNAL_NETWORKS = [ipaddress.ip_network("10.0.0.0/8")]

    validate_outbound_url("http://10.0.0.5/hook")
    with pytest.raises(ValidationError):
        validate_outbound_url("http://192.168.1.1/hook")
