"""/healthz and /readyz of a real portal (`manage.py runportal`) while PostgreSQL or Redis goes away and comes back.

The portal reaches the service through a loopback forwarder (tests/faults/forwarder.py)
that the test takes down, refusing new connections and cutting open ones, as a
stopped server or a broken network would, then brings back. The portal runs as in
production: a scratch PostgreSQL database, SECRET_KEY, and for the Redis case
REDIS_URL (cache, channel layer, broker).
"""

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis

from tests.audit.conftest import scratch_postgres_url
from tests.faults.forwarder import Forwarder
from tests.faults.harness import hard_timeout, wait_until
from tests.services import Process, free_port, manage, subprocess_env

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PASSWORD = "probe-admin-password-1"
READY_TIMEOUT = 1.0  # HEALTH_READY_TIMEOUT_SECONDS of the portal under test
# Redis databases of these tests' own, one per pytest-xdist worker (the alert fault tests use 14 and 15).
REDIS_DB = 12 + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")) % 2


def through(forwarder: Forwarder, url: str) -> str:
    """url with its host and port replaced by the forwarder's."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{credentials}@127.0.0.1:{forwarder.port}".lstrip("@")))


def forwarder_to(url: str, default_port: int) -> Forwarder:
    parts = urlsplit(url)
    return Forwarder(parts.hostname or "127.0.0.1", parts.port or default_port)


@contextlib.contextmanager
def runportal(folder: Path, **settings: str) -> Iterator[str]:
    """`manage.py runportal --no-worker` on a free port, migrated, with an admin account; its base URL."""
    env = subprocess_env(
        SECRET_KEY="p" * 60,
        OPSPORTAL_VAR_DIR=str(folder / "var"),
        OPSPORTAL_ADMIN_PASSWORD=PASSWORD,
        HEALTH_READY_TIMEOUT_SECONDS=str(READY_TIMEOUT),
        DB_CONNECTION_TIMEOUT="2",
        **settings,
    )
    result = manage("migrate", "-v0", env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    port = free_port()
    portal = Process(
        [sys.executable, "manage.py", "runportal", "--no-worker", "--port", str(port)],
        env=env,
        log=folder / "runportal.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        portal.wait_for_http(f"{base}/healthz")
        yield base
    finally:
        portal.stop()
    assert "Traceback" not in portal.output, portal.output[-5000:]


def timed_get(session: httpx.Client, path: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = session.get(path)
    return response, time.monotonic() - started


def logged_in(base: str) -> httpx.Client:
    session = httpx.Client(base_url=base, timeout=30)
    session.get("/admin/login/")
    response = session.post(
        "/admin/login/",
        data={"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
    )
    assert response.status_code == 302, response.text[-2000:]
    return session


def test_postgresql_unreachable_makes_readyz_503_on_time_while_healthz_stays_200(tmp_path):
    forwarder = forwarder_to(os.environ["DATABASE_URL"], 5432)
    with (
        hard_timeout(180, "PostgreSQL outage"),
        scratch_postgres_url(os.environ["DATABASE_URL"]) as database_url,
        runportal(tmp_path, DATABASE_URL=through(forwarder, database_url)) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        assert client.get("/readyz").json() == {"status": "ready"}

        forwarder.down()
        for _ in range(3):  # the first try meets the cut connection, the next ones a refused port
            response, took = timed_get(client, "/readyz")
            assert response.status_code == 503
            assert list(response.json()["failed"]) == ["database"]
            assert took < READY_TIMEOUT * 1.1 + 0.2, f"/readyz took {took:.2f} s"
            response, took = timed_get(client, "/healthz")
            assert (response.status_code, response.json()) == (200, {"status": "ok"})
            assert took < 0.5

        forwarder.up()
        back = time.monotonic()
        wait_until(lambda: client.get("/readyz").status_code == 200, 30, "/readyz back to 200")
        print(f"ready again {time.monotonic() - back:.1f} s after PostgreSQL came back")
    forwarder.down()


@pytest.mark.redis
def test_redis_unreachable_makes_readyz_503_naming_redis_while_healthz_and_the_admin_still_answer(tmp_path):
    redis_url = urlunsplit(urlsplit(os.environ["REDIS_URL"])._replace(path=f"/{REDIS_DB}"))
    forwarder = forwarder_to(redis_url, 6379)
    with (
        hard_timeout(180, "Redis outage"),
        scratch_postgres_url(os.environ["DATABASE_URL"]) as database_url,
        runportal(tmp_path, DATABASE_URL=database_url, REDIS_URL=through(forwarder, redis_url)) as base,
        contextlib.closing(logged_in(base)) as session,
        httpx.Client(base_url=base, timeout=30) as anonymous,
    ):
        assert session.get("/readyz").json() == {"status": "ready"}

        forwarder.down()
        response, took = timed_get(anonymous, "/readyz")
        assert response.status_code == 503
        assert set(response.json()["failed"]) == {"redis", "broker"}
        assert took < READY_TIMEOUT * 1.1 + 0.2, f"/readyz took {took:.2f} s"
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/admin/login/").status_code == 200
        for page in ("/admin/", "/admin/health/checkstate/", "/admin/health/healthtarget/"):
            assert session.get(page).status_code == 200, page

        forwarder.up()
        wait_until(lambda: anonymous.get("/readyz").status_code == 200, 30, "/readyz back to 200")
    forwarder.down()
    redis.Redis.from_url(redis_url).flushdb()
