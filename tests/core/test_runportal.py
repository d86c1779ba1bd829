"""runportal as a user starts it: a real process on a free port, real HTTP, real WebSockets."""

import json
import signal
import sys
import uuid
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import redis
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from apps.dashboard.consumers import CLOSE_NOT_LOGGED_IN
from tests.services import Process, free_port, manage, subprocess_env

PASSWORD = "portal-test-password-1"
PING = "import json; from apps.core.tasks import ping; print(json.dumps(ping.delay().get(timeout=30)))"


def login(base: str, username: str, password: str) -> httpx.Client:
    session = httpx.Client(base_url=base, timeout=10)
    session.get("/admin/login/")
    response = session.post(
        "/admin/login/?next=/admin/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Origin": base},  # as a browser sends it: CSRF checks it against the Host the portal got
    )
    assert response.status_code == 302, response.text[:500]
    assert response.headers["location"] == "/admin/"
    return session


def assert_websocket_is_staff_only(base: str, session: httpx.Client) -> None:
    url = base.replace("http://", "ws://") + "/ws/dashboard/"
    cookie = f"sessionid={session.cookies['sessionid']}"
    with ws_connect(url, origin=base, additional_headers={"Cookie": cookie}, open_timeout=10) as socket:
        socket.send(json.dumps({"type": "ping", "id": 1}))
        assert json.loads(socket.recv(timeout=10)) == {"type": "pong", "id": 1}
    with ws_connect(url, origin=base, open_timeout=10) as socket, pytest.raises(ConnectionClosed) as closed:
        socket.recv(timeout=10)
    assert closed.value.rcvd.code == CLOSE_NOT_LOGGED_IN


def assert_stops_cleanly(*processes: Process) -> None:
    codes = [process.stop(signal.SIGTERM, timeout=30) for process in processes]  # all stopped, then judged
    for process, code in zip(processes, codes, strict=True):
        assert code == 0, process.output[-3000:]
        assert process.orphans == [], f"left behind: {process.orphans}"


@pytest.mark.slow
def test_embedded_runportal_serves_authenticates_runs_tasks_and_stops_cleanly(tmp_path, var_dir):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = subprocess_env(OPSPORTAL_VAR_DIR=var_dir, OPSPORTAL_ADMIN_PASSWORD=PASSWORD)
    portal = Process(
        [sys.executable, "manage.py", "runportal", "--port", str(port)], env=env, log=tmp_path / "runportal.log"
    )
    try:
        assert portal.wait_for_http(f"{base}/admin/login/").status_code == 200
        assert_websocket_is_staff_only(base, login(base, "admin", PASSWORD))
        # No TRUSTED_PROXIES: a client on loopback claiming another address is still 127.0.0.1, which
        # METRICS_ALLOWED_IPS lets in (uvicorn's own proxy handling believed such claims from loopback).
        claimed = httpx.get(f"{base}/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
        assert claimed.status_code == 200, claimed.text
        for asset in ("/static/admin/css/base.css", "/static/opsportal/admin.css"):
            assert httpx.get(base + asset).status_code == 200, "static files are served without a CDN"

        # A task queued the normal way, from another process, runs in runportal's worker.
        result = manage("shell", "-c", PING, env=env)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout.strip().splitlines()[-1])["pid"] == portal.popen.pid
    finally:
        assert_stops_cleanly(portal)
    assert "Traceback" not in portal.output
    assert "Warning" not in portal.output


@pytest.mark.slow
def test_a_wrong_password_does_not_log_in_and_the_generated_one_is_printed_once(tmp_path, var_dir):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = subprocess_env(OPSPORTAL_VAR_DIR=var_dir)
    portal = Process(
        [sys.executable, "manage.py", "runportal", "--port", str(port), "--no-worker"],
        env=env,
        log=tmp_path / "runportal.log",
    )
    try:
        portal.wait_for_http(f"{base}/admin/login/")
        printed = [line for line in portal.output.splitlines() if "with password:" in line]
        assert len(printed) == 1
        generated = printed[0].rsplit(": ", 1)[1].strip()
        session = httpx.Client(base_url=base)
        session.get("/admin/login/")
        wrong = session.post(
            "/admin/login/",
            data={
                "username": "admin",
                "password": generated + "x",
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
        )
        assert wrong.status_code == 200 and "sessionid" not in session.cookies
        login(base, "admin", generated)
    finally:
        assert_stops_cleanly(portal)


@pytest.fixture
def scratch_database(production_env):
    """A database of its own on the machine's PostgreSQL, dropped afterwards."""
    url = urlsplit(production_env["DATABASE_URL"])
    name = f"opsportal_rp_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(production_env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(url._replace(path=f"/{name}"))
    with psycopg.connect(production_env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def scratch_redis(production_env):
    """Redis database 15, emptied before and after."""
    url = urlunsplit(urlsplit(production_env["REDIS_URL"])._replace(path="/15"))
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_production_runportal_with_a_separate_celery_worker(tmp_path, var_dir, scratch_database, scratch_redis):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = subprocess_env(
        OPSPORTAL_VAR_DIR=var_dir,
        OPSPORTAL_ADMIN_PASSWORD=PASSWORD,
        DATABASE_URL=scratch_database,
        REDIS_URL=scratch_redis,
        SECRET_KEY="k" * 64,
    )
    portal = Process(
        [sys.executable, "manage.py", "runportal", "--port", str(port), "--no-worker"],
        env=env,
        log=tmp_path / "runportal.log",
    )
    worker = Process(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "opsportal",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "2",
            "--loglevel",
            "INFO",
        ],
        env=env,
        log=tmp_path / "worker.log",
    )
    try:
        assert portal.wait_for_http(f"{base}/admin/login/").status_code == 200
        assert_websocket_is_staff_only(base, login(base, "admin", PASSWORD))

        result = manage("shell", "-c", PING, env=env)
        assert result.returncode == 0, result.stderr + worker.output[-3000:]
        worker.remember_tree()
        answered_by = json.loads(result.stdout.strip().splitlines()[-1])["pid"]
        assert answered_by in worker.tree - {worker.popen.pid}, "a prefork child of the worker ran it"
    finally:
        assert_stops_cleanly(portal, worker)
