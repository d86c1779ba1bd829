"""Real receivers on loopback for alert delivery: an SMTP server (aiosmtpd) and a scripted HTTP server.

Channels that point at them must be marked internal (the admin's "internal
destination" flag): the outbound client refuses loopback otherwise.
"""

import email
import email.policy
import http.server
import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from apps.alerts.models import Notification, NotificationChannel

# ---------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Answer:
    """What the receiver answers to one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0  # seconds before answering: a slow receiver
    hold: threading.Event | None = None  # answer only once the test sets it (at most 10 s)


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "HttpReceiver"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        answer = self.server.arrived(Received(self.command, self.path, headers, body))
        if answer.hold is not None:
            answer.hold.wait(10)
        if answer.delay:
            self.server.closing.wait(answer.delay)
        self.send_response(answer.status)
        for name, value in {"Content-Type": "text/plain", **answer.headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class HttpReceiver(http.server.ThreadingHTTPServer):
    """Records every request (method, path, headers, body) and answers from a script, then 200."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[Received] = []
        self.script: list[Answer] = []
        self.closing = threading.Event()
        self._changed = threading.Condition()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def answer(self, *answers: int | Answer) -> None:
        """The next requests get these answers, in order (a number is just a status)."""
        with self._changed:
            self.script.extend(Answer(status=a) if isinstance(a, int) else a for a in answers)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """The requests once at least `count` have arrived; fails after timeout seconds."""
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.requests) >= count, timeout), self.requests
            return list(self.requests)

    def arrived(self, request: Received) -> Answer:
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()
            return self.script.pop(0) if self.script else Answer()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hung up (cut off at its timeout) is what some tests are about


@pytest.fixture
def start_http_receiver() -> Iterator[Callable[[], HttpReceiver]]:
    """Start as many HTTP receivers as a test needs; all are stopped after it."""
    started: list[HttpReceiver] = []

    def start() -> HttpReceiver:
        receiver = HttpReceiver()
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.closing.set()
        receiver.shutdown()
        receiver.server_close()


@pytest.fixture
def http_receiver(start_http_receiver) -> HttpReceiver:
    return start_http_receiver()


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
    folder = tmp_path_factory.mktemp("smtp-tls")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", folder / "key.pem", "-out", folder / "cert.pem", "-days", "2", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return str(folder / "cert.pem"), str(folder / "key.pem")


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
    from opsportal.celery import app

    keys = ("broker_url", "result_backend", "broker_transport_options")
    saved = {key: app.conf[key] for key in keys}
    app.conf.update(broker_url="memory://", result_backend="cache+memory://", broker_transport_options={})
    yield
    app.conf.update(saved)


@pytest.fixture
def tasks_run_inline() -> Iterator[None]:
    """Tasks that delivery queues run at once in the queuing thread (Celery's eager mode), so tests can
    look at the outcome right after a commit, a replay or a sweep."""
    from opsportal.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved
