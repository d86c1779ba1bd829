"""The fan-out benchmark's moving parts: the two servers, the client processes, a stalled socket, one measured phase.

This module does not import Django: the portal's code runs in the portal's own
processes (runportal, the publisher, `manage.py shell`), configured by the
environment alone, as in production.
"""

import contextlib
import itertools
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis

from bench import ws_client
from bench.common import django_json, migrate, named_postgres, runportal
from tests.services import ROOT, Process, free_port, subprocess_env

DATABASE = "opsportal_bench_fanout"  # created if missing, kept between runs
REDIS_URL = "redis://127.0.0.1:6379/5"  # emptied before each server starts
SECRET_KEY = "bench-fanout-secret-key-0123456789abcdefghijklmnopqrstuvwxyz-0123"
PATH = "/ws/dashboard/"
STAFF = """
import json
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import Permission
from django.contrib.sessions.backends.db import SessionStore
user, _ = get_user_model().objects.update_or_create(
    username="bench-fanout", defaults={"is_staff": True, "is_active": True, "is_superuser": False})
user.user_permissions.set([Permission.objects.get(content_type__app_label="metrics", codename="view_series")])
session = SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
print(json.dumps(session.session_key))
"""


def environment(folder: Path) -> dict[str, str]:
    """Production mode on the benchmark's own PostgreSQL and Redis databases, warnings only, logs to a file."""
    return subprocess_env(
        DATABASE_URL=named_postgres(DATABASE),
        REDIS_URL=REDIS_URL,
        SECRET_KEY=SECRET_KEY,
        LOG_LEVEL="WARNING",
        LOG_CONSOLE="false",
        LOG_FILE=str(folder / "portal.log"),
        OPSPORTAL_VAR_DIR=str(folder / "var"),
        OPSPORTAL_ADMIN_PASSWORD="bench-admin-password-1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
    )


class Server:
    """The portal (`runportal --no-worker`) or the baseline, with its publisher's command line and a login cookie."""

    def __init__(self, kind: str, folder: Path, window: float | None = None) -> None:
        self.kind = kind
        self.window = window  # the portal publisher's batching window, when not its own (a diagnostic)
        self.folder = folder
        self.env = environment(folder)
        self.port = free_port()
        self.cookie = ""
        self.process: Process | None = None

    def start(self) -> None:
        redis.Redis.from_url(REDIS_URL).flushdb()  # seq counters and layer state of earlier runs
        if self.kind == "portal":
            migrate(self.env)
            self.cookie = "sessionid=" + django_json(STAFF, self.env)
            command = runportal(self.port, "--no-worker")
        else:
            command = [sys.executable, "-m", "bench.fanout_baseline", "--port", str(self.port), "--redis", REDIS_URL]
        self.process = Process(command, env=self.env, log=self.folder / f"{self.kind}.out")
        self.wait_until_listening()

    def wait_until_listening(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.popen.poll() is not None:
                raise RuntimeError(f"the {self.kind} server exited:\n{self.process.output[-3000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the {self.kind} server did not listen within {timeout:.0f} s")

    @property
    def pid(self) -> int:
        return self.process.popen.pid

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.pid).cpu_times()
        return times.user + times.system

    def rss_mib(self) -> float:
        return psutil.Process(self.pid).memory_info().rss / 2**20

    def publisher(self, rate: float, warmup: int, frames: int, pad: int) -> list[str]:
        target = ["--portal"] if self.kind == "portal" else ["--baseline", REDIS_URL]
        if self.kind == "portal" and self.window is not None:
            target += ["--window", str(self.window)]
        numbers = ["--rate", str(rate), "--warmup", str(warmup), "--frames", str(frames), "--pad", str(pad)]
        return [sys.executable, "-m", "bench.fanout_publisher", *target, *numbers]

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


class ClientPool:
    """k client processes (bench/ws_client.py), the sockets spread evenly over them."""

    def __init__(self, server: Server, processes: int) -> None:
        target = ws_client.Target("127.0.0.1", server.port, PATH, server.cookie, ["metrics"])
        context = multiprocessing.get_context("fork")  # nothing runs in this process that a fork could break
        self.pipes = []
        self.processes = []
        for _ in range(processes):
            mine, theirs = context.Pipe()
            process = context.Process(target=ws_client.serve, args=(theirs, target), daemon=True)
            process.start()
            self.pipes.append(mine)
            self.processes.append(process)
        self.connected = 0

    def _ask(self, commands: list[tuple]) -> list[Any]:
        for pipe, command in zip(self.pipes, commands, strict=True):
            pipe.send(command)
        return [pipe.recv() for pipe in self.pipes]

    def connect(self, total: int) -> dict[str, Any]:
        """Grow to `total` sockets; how many more connected and failed."""
        more, share = total - self.connected, len(self.pipes)
        answers = self._ask([("connect", more // share + (i < more % share)) for i in range(share)])
        self.connected += sum(answer["connected"] for answer in answers)
        return {
            "connected": sum(answer["connected"] for answer in answers),
            "failed": sum(answer["failed"] for answer in answers),
            "reasons": [reason for answer in answers for reason in answer["reasons"]][:3],
        }

    def start(self) -> None:
        self._ask([("start",)] * len(self.pipes))

    def settle(self, quiet: float, limit: float = 60) -> None:
        """Wait until the sockets have received nothing for `quiet` seconds (at most `limit` seconds)."""
        deadline, last, still_since = time.monotonic() + limit, -1, time.monotonic()
        while time.monotonic() < deadline:
            count = sum(self._ask([("count",)] * len(self.pipes)))
            if count != last:
                last, still_since = count, time.monotonic()
            elif time.monotonic() - still_since >= quiet:
                return
            time.sleep(0.25)

    def report(self) -> tuple[list[dict[str, Any]], float, float]:
        """Every socket's record, the client processes' CPU seconds (together) and the phase's wall seconds."""
        answers = self._ask([("report",)] * len(self.pipes))
        sockets = [record for answer in answers for record in answer["sockets"]]
        return sockets, sum(answer["cpu"] for answer in answers), max(answer["wall"] for answer in answers)

    def quit(self) -> None:
        self._ask([("quit",)] * len(self.pipes))
        for process in self.processes:
            process.join(10)


class Stalled:
    """A dashboard socket that subscribes and then never reads: its receive window closes, the server must cope."""

    RECEIVE_BUFFER = 4096  # bytes; small, so that the server's side fills in seconds, not minutes
    # Loopback's 64 kB segments let the server's kernel buffer up to tcp_wmem's 4 MB for one socket
    # (10 minutes of frames); a remote client's 1,460-byte segments keep it near 100 kB. The segment
    # size advertised in the SYN is what the kernel sizes the server's send buffer by.
    SEGMENT = 1460

    def __init__(self, server: Server) -> None:
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.RECEIVE_BUFFER)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, self.SEGMENT)
        self.socket.connect(("127.0.0.1", server.port))
        self.local_port = self.socket.getsockname()[1]
        self.server_port = server.port
        self.socket.sendall(ws_client.handshake("127.0.0.1", server.port, PATH, server.cookie))
        self.buffer = bytearray()
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.socket.recv(1)  # exactly the answer's head, nothing of what follows
        if b" 101 " not in self.buffer.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"the stalled socket's handshake was refused: {bytes(self.buffer[:200])!r}")
        self.buffer.clear()
        self.socket.sendall(ws_client.client_frame(ws_client.OP_TEXT, b'{"type":"subscribe","topics":["metrics"]}'))

    def server_send_queue(self) -> int | None:
        """Bytes the server's kernel holds for this socket (ss's Send-Q), None if the connection is gone."""
        query = f"( sport = :{self.server_port} and dport = :{self.local_port} )"
        result = subprocess.run(["ss", "-tnH", query], capture_output=True, text=True, check=False)
        fields = result.stdout.split()
        return int(fields[2]) if len(fields) >= 3 else None

    def drain(self, quiet: float = 2.0) -> dict[str, Any]:
        """Read all that is left until the server closes or `quiet` seconds pass; what the socket got."""
        ending = "still open"
        self.socket.settimeout(quiet)
        try:
            while chunk := self.socket.recv(1 << 20):
                self.buffer += chunk
            ending = "closed by the server"
        except TimeoutError:
            pass
        except ConnectionResetError:
            ending = "reset by the server"  # cut off: what the kernel held for it may be gone
        self.socket.close()
        frames = ws_client.split_frames(self.buffer)
        seqs = [ws_client.orjson.loads(payload).get("seq") for opcode, _, payload in frames if opcode == 1]
        close = [payload for opcode, _, payload in frames if opcode == ws_client.OP_CLOSE]
        seqs = [seq for seq in seqs if seq is not None]
        jumps = sum(1 for a, b in itertools.pairwise(seqs) if b > a + 1)
        return {
            "frames": len(seqs),
            "seq_jumps": jumps,
            "close_code": int.from_bytes(close[0][:2], "big") if close and len(close[0]) >= 2 else None,
            "ending": ending,
        }


@dataclass
class Sampler:
    """The server's RSS every `every` seconds, from a thread, while it runs."""

    server: Server
    every: float = 0.5
    samples: list[tuple[float, float]] = field(default_factory=list)  # (monotonic s, MiB)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            with contextlib.suppress(psutil.Error):
                self.samples.append((time.monotonic(), self.server.rss_mib()))

    def between(self, start: float, end: float) -> list[tuple[float, float]]:
        return [(t - start, rss) for t, rss in self.samples if start <= t <= end]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Phase:
    """What one measured phase gathered, before analysis."""

    sockets: list[dict[str, Any]]
    warmup: int
    frames: int
    server_cpu: float  # seconds, from the first measured frame's publication to the last's
    server_cpu_settled: float  # seconds, from the first measured frame's publication until the sockets settled
    seconds: float
    client_cpu: float  # seconds of the client processes together, over the whole phase
    client_wall: float
    rss: list[tuple[float, float]]  # (s since the phase began, MiB)


def run_phase(server: Server, clients: ClientPool, sampler: Sampler, *, rate: float, warmup: int, frames: int,
              pad: int = 0, drain: float = 1.0) -> Phase:  # fmt: skip
    """Publish warmup + frames frames from a publisher process and collect what every socket saw.

    The phase ends once the sockets have received nothing for `drain` seconds: a
    server that is behind (a burst) delivers late rather than never.
    """
    publisher = subprocess.Popen(
        server.publisher(rate, warmup, frames, pad),
        cwd=ROOT,
        env=server.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        _expect(publisher, "ready")
        began = time.monotonic()
        clients.start()
        publisher.stdin.write("go\n")
        publisher.stdin.flush()
        _expect(publisher, "measuring")
        cpu_at_first, measured_from = server.cpu_seconds(), time.monotonic()
        _expect(publisher, "done")
        cpu, seconds = server.cpu_seconds() - cpu_at_first, time.monotonic() - measured_from
        publisher.wait(30)
        clients.settle(drain)
        settled = server.cpu_seconds() - cpu_at_first
    finally:
        if publisher.poll() is None:
            publisher.kill()
    sockets, client_cpu, client_wall = clients.report()
    rss = sampler.between(began, time.monotonic())
    return Phase(sockets, warmup, frames, cpu, settled, seconds, client_cpu, client_wall, rss)


def _expect(publisher: subprocess.Popen, word: str) -> None:
    line = publisher.stdout.readline().strip()
    if line != word:
        raise RuntimeError(f"the publisher said {line!r} instead of {word!r} (exit code {publisher.poll()})")


def analyse(phase: Phase) -> dict[str, Any]:
    """Latency, delivery and loss accounting over the measured frames (numbers warmup .. warmup + frames - 1).

    The first socket's latency of each frame is the way from the publisher to the
    server's fan-out (publisher, Redis, the layer); the rest is the fan-out itself.

    A measured frame a socket did not get is "covered" when a snapshot that the
    socket received in the phase carries a seq at or past the frame's (the resync
    made it whole), else it is a silent loss. A frame's seq is what any socket
    received it with; for a frame no socket got, it is inferred from a neighbour,
    seqs being consecutive when one publisher publishes.
    """
    first, last = phase.warmup, phase.warmup + phase.frames
    seq_of: dict[int, int] = {}
    first_read: dict[int, float] = {}  # per frame, the earliest socket's latency: the way to the fan-out
    latencies: list[float] = []
    received = duplicates = gaps = skipped = stale = errors = closed = 0
    per_socket = []
    for record in phase.sockets:
        numbers, seqs, lats = array("l", record["frames"]), array("q", record["seqs"]), array("d", record["latencies"])
        got = set()
        for number, seq, latency in zip(numbers, seqs, lats, strict=True):
            if first <= number < last:
                seq_of.setdefault(number, seq)
                first_read[number] = min(latency, first_read.get(number, latency))
                duplicates += number in got
                got.add(number)
                latencies.append(latency)
        received += len(got)
        gaps, skipped, stale = gaps + record["gaps"], skipped + record["skipped"], stale + record["stale"]
        errors += record["errors"]
        closed += record["close_code"] is not None or record["lost"]
        per_socket.append((got, max(record["snapshots"], default=0)))
    nobody = sum(1 for number in range(first, last) if number not in seq_of)  # lost before the fan-out
    if seq_of:
        known, known_seq = next(iter(seq_of.items()))
        for number in range(first, last):
            seq_of.setdefault(number, known_seq + number - known)
    missing = covered = 0
    for got, snapshot in per_socket:
        for number in range(first, last):
            if number not in got:
                missing += 1
                covered += snapshot >= seq_of.get(number, 0) > 0
    expected = len(phase.sockets) * phase.frames
    latencies.sort()
    upstream = sorted(first_read.values())
    return {
        "sockets": len(phase.sockets),
        "frames": phase.frames,
        "expected": expected,
        "received": received,
        "delivery": received / expected if expected else 0.0,
        "duplicates": duplicates,
        "missing": missing,
        "frames_nobody_got": nobody,
        "covered_by_snapshot": covered,
        "silent_losses": missing - covered,
        "gaps": gaps,
        "skipped": skipped,
        "stale": stale,
        "errors": errors,
        "closed": closed,
        "resync_snapshots": sum(len(record["snapshots"]) for record in phase.sockets),
        "p50_ms": 1000 * _quantile(latencies, 0.50),
        "p99_ms": 1000 * _quantile(latencies, 0.99),
        "max_ms": 1000 * latencies[-1] if latencies else float("nan"),
        "first_socket_p50_ms": 1000 * _quantile(upstream, 0.50),
        "first_socket_p99_ms": 1000 * _quantile(upstream, 0.99),
        "server_cpu_us_per_delivery": 1e6 * phase.server_cpu / received if received else float("nan"),
        # A burst is published in milliseconds and delivered over seconds: its cost is counted until the end.
        "server_cpu_us_per_delivery_settled": 1e6 * phase.server_cpu_settled / received if received else float("nan"),
        "server_cpu_share": phase.server_cpu / phase.seconds if phase.seconds else 0.0,
        "client_cpu_share": phase.client_cpu / phase.client_wall if phase.client_wall else 0.0,
        "rss_max_mib": max((rss for _, rss in phase.rss), default=float("nan")),
        "rss_last_mib": phase.rss[-1][1] if phase.rss else float("nan"),
    }


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@contextlib.contextmanager
def server_running(kind: str, root: Path, window: float | None = None) -> Iterator[Server]:
    server = Server(kind, Path(tempfile.mkdtemp(dir=root, prefix=f"{kind}-")), window)
    try:
        server.start()
        yield server
    finally:
        server.stop()
