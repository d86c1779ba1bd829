"""The live push as production runs it: two web processes (`runportal --no-worker`), channels-redis on a
private redis-server, a third process publishing as the Celery worker does."""

import asyncio
import json
import shutil
import signal
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import POSTGRES_URL
from tests.core.test_runportal import login
from tests.services import Process, free_port, manage, subprocess_env

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.xdist_group("dashboard_processes"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]
PASSWORD = "portal-test-password-1"


class RedisServer:
    """A private redis-server on a free port, without persistence: a restart loses everything, as it can."""

    def __init__(self, folder: Path) -> None:
        self.port, self.folder, self.process = free_port(), folder, None

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = Process([*args, "--dir", str(self.folder)], env={}, log=self.folder / f"redis-{time.time()}.log")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        self.process.stop(signal.SIGKILL, timeout=10)


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def scratch_database() -> Iterator[str]:
    url = urlsplit(POSTGRES_URL)
    name = f"opsportal_ws_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(url._replace(path=f"/{name}"))
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def deployment(tmp_path, var_dir, scratch_database, redis_server) -> Iterator[tuple[dict, list[str]]]:
    """Two web processes on one database and one Redis; yields the environment and their base URLs."""
    env = subprocess_env(
        OPSPORTAL_VAR_DIR=var_dir,
        OPSPORTAL_ADMIN_PASSWORD=PASSWORD,
        DATABASE_URL=scratch_database,
        REDIS_URL=f"redis://127.0.0.1:{redis_server.port}/0",
        SECRET_KEY="k" * 64,
    )
    portals, bases = [], []
    try:
        for n in range(2):  # one after the other: the first applies the migrations
            port = free_port()
            args = [sys.executable, "manage.py", "runportal", "--no-worker", "--port", str(port)]
            portals.append(Process(args, env=env, log=tmp_path / f"web{n}.log"))
            bases.append(f"http://127.0.0.1:{port}")
            portals[-1].wait_for_http(f"{bases[-1]}/admin/login/")
        yield env, bases
    finally:
        for portal in portals:
            assert portal.stop(signal.SIGTERM, timeout=30) == 0, portal.output[-3000:]
        for portal in portals:  # (losing Redis is logged with its traceback: that is expected here)
            for failure in ("Exception in ASGI application", "dashboard_tick_failed", "dashboard_snapshot_failed"):
                assert failure not in portal.output, portal.output[-5000:]


def publish(env: dict, count: int, tag: str) -> None:
    """Publish from a process of its own (the Celery worker's role): frames a few ms apart, then a burst."""
    code = (
        "import time\nfrom apps.core.broadcast import broadcast_on_commit as b\n"
        f"for n in range({count}):\n"
        f"    b('metrics', 'sample', {{'at': n, 'values': {{}}, 'tag': {tag!r}}})\n"
        f"    time.sleep(0.02 if n < {count // 2} else 0)\n"
        "time.sleep(1)  # the publisher thread sends what is queued\n"
    )
    result = manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr


async def clients(bases: list[str], per_server: int) -> list[ClientConnection]:
    cookie = f"sessionid={login(bases[0], 'admin', PASSWORD).cookies['sessionid']}"
    sockets = []
    for base in bases:
        for _ in range(per_server):
            url = base.replace("http://", "ws://") + "/ws/dashboard/"
            sockets.append(await connect(url, origin=base, additional_headers={"Cookie": cookie}, open_timeout=10))
    return sockets


async def next_frame(ws: ClientConnection, timeout: float, **fields: str) -> dict:
    """The next frame with these fields (heartbeats and the like are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
        if all(frame.get(k) == v for k, v in fields.items()):
            return frame


async def subscribe(ws: ClientConnection) -> int:
    await ws.send(json.dumps({"type": "subscribe", "topics": ["metrics"]}))
    return (await next_frame(ws, 10, type="snapshot"))["seq"]


async def samples(ws: ClientConnection, count: int, tag: str, timeout: float) -> list[dict]:
    frames = []
    while len(frames) < count:
        frame = await next_frame(ws, timeout, type="sample")
        if frame["data"]["tag"] == tag:
            frames.append(frame)
    return frames


async def test_a_broadcast_from_a_third_process_reaches_clients_of_both_web_processes_in_order(deployment):
    env, bases = deployment
    sockets = await clients(bases, 2)
    bases_seq = [await subscribe(ws) for ws in sockets]
    assert len(set(bases_seq)) == 1, "both processes number from the same counter"

    publisher = asyncio.create_task(asyncio.to_thread(publish, env, 40, "one"))
    received = [await samples(ws, 40, "one", timeout=60) for ws in sockets]
    await publisher

    for frames in received:
        assert [f["data"]["at"] for f in frames] == list(range(40))
        assert [f["seq"] for f in frames] == list(range(bases_seq[0] + 1, bases_seq[0] + 41))
    for ws in sockets:
        await ws.close()


async def test_after_a_redis_restart_every_client_is_resynced_within_2_s_and_frames_flow_again(
    deployment, redis_server
):
    env, bases = deployment
    sockets = await clients(bases, 2)
    for ws in sockets:
        await subscribe(ws)

    redis_server.stop()
    await asyncio.sleep(1)
    redis_server.start()
    back = time.monotonic()

    snapshots = [await next_frame(ws, 5, type="snapshot") for ws in sockets]
    assert time.monotonic() - back <= 2, "every client resynced within 2 s of Redis being back"
    publisher = asyncio.create_task(asyncio.to_thread(publish, env, 10, "two"))
    for ws, snapshot in zip(sockets, snapshots, strict=True):
        frames = await samples(ws, 10, "two", timeout=60)
        assert [f["seq"] for f in frames] == list(range(snapshot["seq"] + 1, snapshot["seq"] + 11))
    await publisher
    for ws in sockets:
        await ws.close()
