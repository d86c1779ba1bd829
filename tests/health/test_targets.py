"""HealthTarget: HTTP(S) and TCP checks through the SSRF guard, against real servers on loopback; validation."""

import shutil
import socket
import subprocess
import time
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from apps.core.outbound.transport import tls_context
from apps.health import services
from apps.health.checks import Status
from apps.health.checks.targets import check_target
from apps.health.models import CheckState, HealthTarget
from tests.receiver import Answer
from tests.services import free_port

pytestmark = pytest.mark.django_db


def http_target(url: str, **fields) -> HealthTarget:
    fields.setdefault("is_internal", True)
    target = HealthTarget(name=fields.pop("name", "api"), kind=HealthTarget.Kind.HTTP, url=url, **fields)
    target.full_clean()
    target.save()
    return target


def tcp_target(port: int, **fields) -> HealthTarget:
    fields.setdefault("is_internal", True)
    target = HealthTarget(name=fields.pop("name", "smtp"), kind=HealthTarget.Kind.TCP, host="127.0.0.1", port=port,
                          **fields)  # fmt: skip
    target.full_clean()
    target.save()
    return target


def errors(**fields) -> dict[str, list[str]]:
    target = HealthTarget(name=fields.pop("name", "x"), **fields)
    with pytest.raises(ValidationError) as error:
        target.full_clean()
    return error.value.message_dict


# ---------------------------------------------------------------- HTTP


def test_a_target_answering_the_expected_status_is_ok(receiver):
    outcome = check_target(http_target(receiver.url("/ping")))

    assert outcome.status == Status.OK and outcome.message.startswith("HTTP 200 in ")
    assert outcome.details["address"] == "127.0.0.1"
    assert [(r.method, r.path) for r in receiver.requests()] == [("GET", "/ping")]


def test_another_status_than_expected_is_critical(receiver):
    receiver.always(Answer(503, body=b"maintenance"))

    outcome = check_target(http_target(receiver.url()))

    assert (outcome.status, outcome.message) == (Status.CRITICAL, "HTTP 503, expected 200")


def test_the_method_and_expected_status_are_the_targets(receiver):
    receiver.always(Answer(204, body=b""))

    outcome = check_target(http_target(receiver.url(), method="HEAD", expected_status=204))

    assert outcome.status == Status.OK and receiver.requests()[0].method == "HEAD"


def test_a_missing_keyword_is_critical(receiver):
    receiver.always(Answer(200, body=b'{"status": "degraded"}'))

    assert check_target(http_target(receiver.url(), keyword='"status": "degraded"')).status == Status.OK
    outcome = check_target(http_target(receiver.url(), name="api2", keyword='"status": "up"'))
    assert (outcome.status, outcome.message) == (
        Status.CRITICAL,
        """HTTP 200 but '"status": "up"' is not in the response""",
    )


def test_a_slow_answer_is_graded_by_the_targets_own_latency_thresholds(receiver, settings):
    receiver.slow(0.2)
    settings.HEALTH_LATENCY_WARNING_MS, settings.HEALTH_LATENCY_CRITICAL_MS = 5000, 10000

    assert check_target(http_target(receiver.url())).status == Status.OK
    assert check_target(http_target(receiver.url(), name="w", latency_warning_ms=100)).status == Status.WARNING
    target = http_target(receiver.url(), name="c", latency_warning_ms=50, latency_critical_ms=100)
    assert check_target(target).status == Status.CRITICAL


def test_a_target_that_never_answers_times_out_and_the_others_finish_on_time(start_receiver, with_targets):
    hanging, healthy = start_receiver(), start_receiver()
    hanging.hang()
    http_target(hanging.url(), name="hanging", timeout_seconds=1)
    http_target(healthy.url(), name="healthy")
    tcp_target(healthy.port, name="port")

    started = time.monotonic()
    results = {result.name: result for result in services.run_checks()}
    took = time.monotonic() - started

    assert took < 1.5 * 1.1  # the hanging target's 1 s, and the runner's grace of 0.5 s at most
    assert results["target:hanging"].status == Status.CRITICAL
    assert "timed out" in results["target:hanging"].message
    assert results["target:healthy"].status == results["target:port"].status == Status.OK


def test_a_loopback_target_is_refused_unless_marked_internal(receiver):
    target = http_target(receiver.url(), is_internal=True)
    target.is_internal = False  # as if OUTBOUND rules changed after it was saved

    outcome = check_target(target)

    assert outcome.status == Status.CRITICAL
    assert outcome.message == "refused by the outbound policy: 127.0.0.1 is a loopback address"
    assert receiver.requests() == []


def test_a_refused_connection_is_critical():
    outcome = check_target(http_target(f"http://127.0.0.1:{free_port()}/"))

    assert outcome.status == Status.CRITICAL and "refused" in outcome.message.lower()


@pytest.fixture(scope="module")
def short_certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 that runs out in 3 days."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", folder / "key.pem", "-out", folder / "cert.pem", "-days", "3", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return folder / "cert.pem", folder / "key.pem"


@pytest.fixture
def tls_receiver(start_receiver, short_certificate, monkeypatch):
    """An HTTPS receiver whose certificate the client trusts (SSL_CERT_FILE, as for a private CA)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(short_certificate[0]))
    tls_context.cache_clear()  # the context is built once per process
    yield start_receiver(tls=short_certificate)
    monkeypatch.undo()
    tls_context.cache_clear()


def test_an_https_targets_certificate_days_left_are_graded(tls_receiver):
    url = tls_receiver.url("/")

    default = check_target(http_target(url))
    assert default.status == Status.CRITICAL  # 2 days left: within HEALTH_CERT_CRITICAL_DAYS (7)
    assert default.message.endswith("certificate expires in 2 days")
    assert default.details["certificate_days_left"] == 2

    relaxed = http_target(url, name="relaxed", cert_warning_days=14, cert_critical_days=1)
    assert check_target(relaxed).status == Status.WARNING
    lax = http_target(url, name="lax", cert_warning_days=1, cert_critical_days=0)
    assert check_target(lax).status == Status.OK


def test_an_untrusted_certificate_is_critical(start_receiver, short_certificate):
    tls_context.cache_clear()
    server = start_receiver(tls=short_certificate)

    outcome = check_target(http_target(server.url("/")))

    assert outcome.status == Status.CRITICAL and "certificate" in outcome.message.lower()


# ---------------------------------------------------------------- TCP


def test_a_tcp_target_that_accepts_is_ok_and_a_closed_port_is_critical():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        outcome = check_target(tcp_target(listener.getsockname()[1]))
    assert outcome.status == Status.OK and outcome.message.startswith("connected to 127.0.0.1 port ")

    refused = check_target(tcp_target(free_port(), name="closed"))
    assert refused.status == Status.CRITICAL and "Connection refused" in refused.message


def test_a_tcp_target_on_a_private_address_is_refused_unless_internal():
    target = tcp_target(free_port())
    target.is_internal = False

    outcome = check_target(target)

    assert outcome.message == "refused by the outbound policy: 127.0.0.1 is a loopback address"


# ---------------------------------------------------------------- scheduling and alerts


def test_a_target_runs_at_its_own_interval_and_alerts_after_its_own_for(receiver, with_targets, clock):
    receiver.always(Answer(500))
    http_target(receiver.url(), interval_seconds=60, for_seconds=90)

    assert [r.name for r in services.run_and_store()] == ["target:api"]
    clock.shift(timedelta(seconds=30))
    assert services.run_and_store() == []  # not due yet
    clock.shift(timedelta(seconds=30))
    services.run_and_store()
    clock.shift(timedelta(seconds=60))
    services.run_and_store()

    assert len(receiver.requests()) == 3
    state = CheckState.objects.get(name="target:api")
    assert (state.status, state.message, state.alerted) == ("critical", "HTTP 500, expected 200", True)


def test_a_disabled_target_is_not_checked(receiver, with_targets):
    http_target(receiver.url(), enabled=False)

    assert services.run_checks() == []
    assert receiver.requests() == []


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "This URL cannot be used"),
        ("ftp://example.org/file", "only http and https URLs are allowed"),
        ("http://user:pw@example.org/", "credentials"),
        ("http://", "This URL cannot be used"),
    ],
)
def test_a_malformed_url_is_a_clear_validation_error(url, message):
    assert message in errors(kind="http", url=url)["url"][0]


def test_a_private_address_needs_the_internal_flag():
    (message,) = errors(kind="http", url="http://10.1.2.3/health")["url"]

    assert message == "10.1.2.3 is not an allowed destination: 10.1.2.3 is a private address."
    HealthTarget(name="ok", kind="http", url="http://10.1.2.3/health", is_internal=True).full_clean()


def test_metadata_addresses_are_refused_even_when_internal():
    (message,) = errors(kind="http", url="http://169.254.169.254/latest/", is_internal=True)["url"]

    assert "cloud metadata address" in message


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"kind": "http"}, "url", "An HTTP(S) target needs a URL."),
        ({"kind": "tcp", "port": 25}, "host", "A TCP target needs a host."),
        ({"kind": "tcp", "host": "mail.example.org"}, "port", "A TCP target needs a port (1-65535)."),
        ({"kind": "tcp", "host": "mail.example.org", "port": 70000}, "port", "less than or equal to 65535"),
        ({"kind": "tcp", "host": "http://mail.example.org/", "port": 25}, "host", "without a scheme, port or path"),
        ({"kind": "http", "url": "https://1.1.1.1/", "latency_warning_ms": -5}, "latency_warning_ms",
         "greater than or equal to"),
        ({"kind": "http", "url": "https://1.1.1.1/", "timeout_seconds": 0}, "timeout_seconds",
         "greater than or equal to 1"),
        ({"kind": "http", "url": "https://1.1.1.1/", "expected_status": 42}, "expected_status",
         "greater than or equal to 100"),
        ({"kind": "http", "url": "https://1.1.1.1/", "latency_warning_ms": 500, "latency_critical_ms": 100},
         "latency_warning_ms", "must not exceed the critical one"),
        ({"kind": "http", "url": "https://1.1.1.1/", "cert_warning_days": 3, "cert_critical_days": 10},
         "cert_critical_days", "must not exceed the warning days"),
    ],
)  # fmt: skip
def test_contradictory_or_incomplete_targets_are_clear_validation_errors(fields, field, message):
    found = errors(**fields)

    assert any(message in text for text in found[field]), found


def test_a_target_name_must_be_usable_as_a_check_name():
    assert "Letters, digits" in errors(name="my api!", kind="http", url="https://1.1.1.1/")["name"][0]
