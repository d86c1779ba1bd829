"""One HTTP(S) receiver on loopback for every test that needs a server to talk to.

It records each request and answers as the test says: scripted answers in order,
fixed or computed answers per path, a slow answer, an answer held until the test
lets it go, or none at all (hang: the connection is accepted and left open).
down() closes the port, as a receiver that is not running, and up() opens the same
port again. Stopping never waits for a request being answered: whatever is held,
slow or hanging is let go, and open connections are cut.

It imports nothing of Django: tests/faults/harness.py runs it in a process that
only orchestrates the portal's. In pytest, tests/conftest.py's `receiver` and
`start_receiver` fixtures start it and stop it after the test; elsewhere
`with Receiver() as receiver:` does. self_signed_certificate() makes what an
HTTPS receiver (or any other TLS server in the tests) presents.
"""

import contextlib
import http.server
import ipaddress
import json
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Self


@dataclass(frozen=True)
class Answer:
    """What the receiver answers to one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0  # seconds before answering: a slow receiver
    drip: float = 0.0  # seconds between the body's bytes: an answer that trickles in
    hold: threading.Event | None = None  # answer only once the test sets it
    hang: bool = False  # never answer: the connection stays open until the receiver stops


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # with its query string
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.time() once the request was read
    status: int | None = None  # what the receiver answered (None: it hung)

    @property
    def key(self) -> str:
        """The webhook-id header: the idempotency key of the portal's webhooks."""
        return self.headers.get("webhook-id", "")

    def json(self) -> Any:
        return json.loads(self.body)


# An answer, or a function of the request that returns one.
Responder = Answer | Callable[[Request], Answer]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, for clients that reuse connections
    server: "_Server"

    def respond(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        answer = self.server.arrived(Request(self.command, self.path, headers, body, time.time()))
        stopping = self.server.stopping
        if answer.hold is not None:
            while not (answer.hold.wait(0.05) or stopping.is_set()):
                pass
        if answer.hang or stopping.wait(answer.delay):
            stopping.wait()
            self.close_connection = True
            return
        self.send_response(answer.status)
        for name, value in {"Content-Type": "text/plain; charset=utf-8", **answer.headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if not answer.drip:
            self.wfile.write(answer.body)
            return
        for byte in answer.body:
            if stopping.wait(answer.drip):
                return
            self.wfile.write(bytes([byte]))

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = respond  # noqa: N815 - http.server's names

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stopping does not wait for the threads answering: down() cuts them off

    def __init__(self, port: int, arrived: Callable[[Request], Answer], tls: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        if tls is not None:
            # The handshake happens in the thread serving the connection, so a client that never
            # makes it cannot hold up the accepting loop (nor stopping it).
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.arrived = arrived
        self.stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def process_request(self, request: socket.socket, client_address: object) -> None:
        with self._lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:
        with self._lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        with self._lock:
            connections = list(self._open)
        for connection in connections:  # idle keep-alive connections and hanging answers
            with contextlib.suppress(OSError):  # already closed by its client
                connection.shutdown(socket.SHUT_RDWR)
        self.server_close()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hung up or was cut off (at its timeout, by a kill) is what many tests are about


class Receiver:
    """An HTTP receiver on 127.0.0.1 (HTTPS with tls=(certificate, key)), serving from the moment it is made.

    Answers, first that applies: the scripted ones (answer()), in order, one per
    request; the one set for the request's path (always(..., path=) and the
    helpers built on it); the one set for every path; 200 "ok".

    on_arrival, when set, is called with each request after it is recorded and
    before it is answered, in the thread serving it: the sender is still waiting.
    """

    def __init__(self, *, port: int = 0, tls: tuple[str | Path, str | Path] | None = None) -> None:
        self.on_arrival: Callable[[Request], None] | None = None
        self.sni: list[str | None] = []  # the server names TLS clients asked for
        self._received: list[Request] = []
        self._script: list[Answer] = []
        self._paths: dict[str | None, Responder] = {}
        self._changed = threading.Condition()
        self._tls: ssl.SSLContext | None = None
        if tls is not None:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(*tls)
            self._tls.sni_callback = lambda sock, name, context: self.sni.append(name)
        self._server: _Server | None = None
        self.port = port
        self.up()
        self.port = self._server.server_address[1]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.down()

    def url(self, path: str = "/hook", *, host: str = "127.0.0.1", scheme: str | None = None) -> str:
        return f"{scheme or ('https' if self._tls else 'http')}://{host}:{self.port}{path}"

    # -- up and down

    def up(self) -> None:
        """Listen (again) on the port, and serve."""
        server = _Server(self.port, self._arrived, self._tls)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        self._server = server

    def down(self) -> None:
        """Close the port: connections are refused, as by a receiver that is not running.

        Requests being answered are cut off, hanging ones included; it does not wait for them.
        """
        if self._server is not None:
            self._server.stop()
            self._server = None

    # -- what it answers

    def answer(self, *answers: int | Answer) -> None:
        """The next requests get these answers, in order (a number is just a status)."""
        with self._changed:
            self._script.extend(Answer(status=a) if isinstance(a, int) else a for a in answers)

    def always(self, answer: Responder, *, path: str | None = None) -> None:
        """From now on every request (to path, its query string aside) gets this answer, or what this function
        of the request returns."""
        with self._changed:
            self._paths[path] = answer

    def hang(self, *, path: str | None = None) -> None:
        """Accept the connection, read the request and never answer, until the receiver stops."""
        self.always(Answer(hang=True), path=path)

    def slow(self, seconds: float, *, path: str | None = None) -> None:
        """Answer 200 "ok", but only after `seconds`."""
        self.always(Answer(delay=seconds), path=path)

    def fail_first(self, path: str, status: int, tries: int = 1) -> None:
        """Answer `status` to the first `tries` requests of each key (webhook-id) on path, and 200 after that."""
        seen: Counter = Counter()

        def failing(request: Request) -> Answer:
            seen[request.key] += 1  # called under the receiver's lock
            return Answer(status) if seen[request.key] <= tries else Answer()

        self.always(failing, path=path)

    # -- what it received

    def requests(self, path: str | None = None) -> list[Request]:
        """The requests so far, in the order they arrived (those to path only, when given)."""
        with self._changed:
            return [request for request in self._received if path is None or request.path == path]

    def keys(self, path: str) -> Counter:
        """How many times each key (webhook-id) arrived on path."""
        return Counter(request.key for request in self.requests(path))

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Request]:
        """The requests once at least `count` have arrived; fails after timeout seconds."""
        with self._changed:
            assert self._changed.wait_for(lambda: len(self._received) >= count, timeout), self._received
            return list(self._received)

    def _arrived(self, request: Request) -> Answer:
        with self._changed:
            if self._script:
                answer = self._script.pop(0)
            else:
                responder = self._paths.get(request.path.partition("?")[0], self._paths.get(None, Answer()))
                answer = responder if isinstance(responder, Answer) else responder(request)
            request = replace(request, status=None if answer.hang else answer.status)
            self._received.append(request)
            self._changed.notify_all()
        if self.on_arrival is not None:
            self.on_arrival(request)
        return answer


def self_signed_certificate(folder: Path, name: str, *, days: int = 2) -> tuple[Path, Path]:
    """A certificate for name (a host name or an IP address) signed by its own key, made by the openssl
    command in folder: (certificate, key), as Receiver's tls= takes them."""
    try:
        subject = f"IP:{ipaddress.ip_address(name)}"
    except ValueError:
        subject = f"DNS:{name}"
    certificate, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", key, "-out", certificate, "-days", str(days), "-subj", f"/CN={name}"),
            *("-addext", f"subjectAltName={subject}"),
        ],
        check=True,
        capture_output=True,
    )
    return certificate, key
