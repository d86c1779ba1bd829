"""Real receivers on loopback for alert delivery: an SMTP server (aiosmtpd) and a scripted HTTP server
(tests/receiver.py; the alert tests know it by the names below).

Channels that point at them must be marked internal (the admin's "internal
destination" flag): the outbound client refuses loopback otherwise.
"""

import email
import email.policy
import shutil
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from apps.alerts.models import Notification, NotificationChannel
from tests import services
from tests.receiver import Receiver, self_signed_certificate

# ---------------------------------------------------------------- HTTP


@pytest.fixture
def start_http_receiver(start_receiver) -> Callable[..., Receiver]:
    return start_receiver


@pytest.fixture
def http_receiver(receiver) -> Receiver:
    return receiver


# ---------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class Mail:
    message: email.message.EmailMessage
    recipients: list[str]
    encrypted: bool  # the session had switched to TLS (STARTTLS) before the message


class Mailbox:
    """aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.mails.append(Mail(message, list(envelope.rcpt_tos), encrypted=session.ssl is not None))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    port: int
    mailbox: Mailbox

    @property
    def mails(self) -> list[Mail]:
        return self.mailbox.mails


@pytest.fixture(scope="session")
def smtp_certificate(tmp_path_factory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1, for the SMTP server that offers STARTTLS."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    certificate, key = self_signed_certificate(tmp_path_factory.mktemp("smtp-tls"), "127.0.0.1")
    return str(certificate), str(key)


@pytest.fixture
def start_smtp_server(settings, request) -> Iterator[Callable[..., SmtpServer]]:
    """Start an SMTP server on loopback and point Django's EMAIL_* settings at it.

    By default it does not offer STARTTLS (and Django is set not to ask for it);
    with starttls=True it offers STARTTLS with a certificate the client trusts
    (SSL_CERT_FILE, as an operator with a private CA would set it).
    """
    controllers: list[Controller] = []

    def start(*, starttls: bool = False) -> SmtpServer:
        mailbox = Mailbox()
        options: dict[str, Any] = {}
        if starttls:
            cert, key = request.getfixturevalue("smtp_certificate")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            options = {"tls_context": context, "require_starttls": True}
            request.getfixturevalue("monkeypatch").setenv("SSL_CERT_FILE", cert)
        controller = Controller(mailbox, hostname="127.0.0.1", port=_free_port(), **options)
        controller.start()
        controllers.append(controller)
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_USE_TLS, settings.EMAIL_USE_SSL, settings.EMAIL_TIMEOUT = starttls, False, 5
        return SmtpServer(controller.port, mailbox)

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def smtp_server(start_smtp_server) -> SmtpServer:
    return start_smtp_server()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------- rows and tasks


@pytest.fixture
def make_channel() -> Callable[..., NotificationChannel]:
    """A channel; one on loopback is marked internal unless the test says otherwise."""

    def make(name: str, kind: str = "webhook", **fields: Any) -> NotificationChannel:
        fields.setdefault("internal", True)
        fields.setdefault("rate_limit_per_minute", 0)
        return NotificationChannel.objects.create(name=name, kind=kind, **fields)

    return make


@pytest.fixture
def make_notification() -> Callable[..., Notification]:
    """An outbox row as services.py writes one, but with no task dispatched (as after a crash at commit)."""

    def make(
        channel: NotificationChannel, key: str = "firing:abc:1", *, now: datetime | None = None, **fields: Any
    ) -> Notification:
        now = now or timezone.now()
        values = {
            "kind": Notification.Kind.FIRING,
            "payload": {
                "kind": "firing",
                "title": "[FIRING] critical: db is down",
                "text": "- db is down",
                "alerts": [],
            },
            "next_attempt_at": now,
            "created_at": now,
            "give_up_at": now + timedelta(minutes=60),
            **fields,
        }
        return Notification.objects.create(key=key, channel=channel, **values)

    return make


@pytest.fixture(scope="session", autouse=True)
def broker_in_memory() -> Iterator[None]:
    """Tasks queued by these tests (after a commit, by a sweep) go to an in-memory broker.

    Without it they would land in var/broker/, where a developer's runportal would
    run them later. It must be in place before anything queues a task: the app
    keeps its first connection pool (tests/conftest.py's celery_worker uses the
    same in-memory broker).
    """
    with services.broker_in_memory():
        yield


@pytest.fixture
def tasks_run_inline() -> Iterator[None]:
    """Tasks that delivery queues run at once in the queuing thread (Celery's eager mode), so tests can
    look at the outcome right after a commit, a replay or a sweep."""
    from opsportal.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved
