"""/metrics under gunicorn with several workers: whichever worker answers, the answer is the whole server's.

gunicorn started as the production layout starts it (opsportal/gunicorn.conf.py), with two workers: the
django_http_* counters are summed over every worker's files (prometheus_client's multiprocess mode), the
portal's own families are read from the database as in one process, and a worker killed and replaced
takes none of the counts with it. Embedded mode (SQLite) always; with DATABASE_URL and REDIS_URL set,
also the production mode.
"""

import os
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REDIS_URL
from tests.core.test_runportal import assert_stops_cleanly, scratch_database  # noqa: F401 - a fixture
from tests.services import Process, free_port, manage, subprocess_env

pytestmark = pytest.mark.slow

RESPONSES = "django_http_responses_total_by_status_view_method"  # a counter family of django-prometheus


class Server(NamedTuple):
    base: str
    process: Process


def start_gunicorn(env: dict, log: Path) -> Server:
    """gunicorn with the production configuration and two workers on a free port, once both have forked."""
    port = free_port()
    env = env | {"GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": "2"}
    process = Process([sys.executable, "-m", "gunicorn", "-c", "opsportal/gunicorn.conf.py"], env=env, log=log)
    base = f"http://127.0.0.1:{port}"
    process.wait_for_http(f"{base}/healthz")
    wait_for(lambda: len(workers(process)) == 2, "two workers")
    return Server(base, process)


@pytest.fixture(params=["embedded", pytest.param("production", marks=[pytest.mark.postgres, pytest.mark.redis])])
def portal_env(request, var_dir) -> dict:
    """A migrated portal's environment, as runportal would have left it before gunicorn starts."""
    env = {"OPSPORTAL_VAR_DIR": var_dir}
    if request.param == "production":
        env |= {"DATABASE_URL": request.getfixturevalue("scratch_database"), "REDIS_URL": REDIS_URL,
                "SECRET_KEY": "gunicorn-metrics-" + "s" * 50}  # fmt: skip
    env = subprocess_env(**env)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the configuration's own directory, unless a test names one
    migrated = manage("migrate", "--no-input", env=env, timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    return env


@pytest.fixture
def server(portal_env, tmp_path) -> Iterator[Server]:
    server = start_gunicorn(portal_env, tmp_path / "gunicorn.log")
    try:
        yield server
    finally:
        assert_stops_cleanly(server.process)
    assert "Traceback" not in server.process.output, server.process.output[-3000:]


def workers(process: Process) -> list[int]:
    return [child.pid for child in psutil.Process(process.popen.pid).children()]


def wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout}s"
        time.sleep(0.1)


def get_login_pages(base: str, count: int) -> None:
    """count GETs of the admin's login page (a view django-prometheus counts), eight at a time on new
    connections, so that both workers take some."""
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: httpx.get(f"{base}/admin/login/", timeout=10).status_code, range(count)))
    assert statuses == [200] * count


def scrape(base: str) -> dict[str, list]:
    """One scrape, on a new connection (so any worker may answer): {family name: samples}."""
    response = httpx.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200, response.text[:500]
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def login_pages_served(families: dict[str, list]) -> float:
    samples = families.get(RESPONSES, [])
    return sum(s.value for s in samples if s.name == f"{RESPONSES}_total" and s.labels["view"] == "admin:login")


def totals(base: str, scrapes: int = 12) -> list[float]:
    return [login_pages_served(scrape(base)) for _ in range(scrapes)]


def test_every_scrape_counts_every_workers_requests_and_the_portals_families(server):
    get_login_pages(server.base, 40)

    assert totals(server.base) == [40] * 12
    families = scrape(server.base)
    assert {"opsportal_alerts_firing", "opsportal_audit_events"} <= families.keys()
    # Memory, CPU and garbage collection of one process or another: no such families in the server's answer.
    assert [name for name in families if name.startswith(("process_", "python_"))] == []


def test_a_killed_worker_takes_none_of_its_counts_with_it(server):
    get_login_pages(server.base, 40)
    killed = workers(server.process)[0]

    os.kill(killed, signal.SIGKILL)
    wait_for(lambda: killed not in workers(server.process) and len(workers(server.process)) == 2, "new worker")
    get_login_pages(server.base, 10)

    assert totals(server.base) == [50] * 12


def test_the_master_keeps_the_workers_files_in_a_private_directory_it_removes(server):
    files = [Path(f.path) for worker in workers(server.process) for f in psutil.Process(worker).open_files()]
    folders = {path.parent for path in files if path.name.startswith(("counter_", "histogram_"))}

    assert len(folders) == 1, files
    folder = folders.pop()
    assert folder.stat().st_mode & 0o777 == 0o700
    server.process.stop()
    assert not folder.exists()


def test_a_directory_named_in_the_environment_is_used_and_emptied_at_start(var_dir, tmp_path):
    folder = tmp_path / "prometheus"
    folder.mkdir()
    stale = folder / "counter_99999.db"  # a previous server's
    stale.write_bytes(b"\0" * 8)
    env = subprocess_env(OPSPORTAL_VAR_DIR=var_dir, PROMETHEUS_MULTIPROC_DIR=str(folder))
    assert manage("migrate", "--no-input", env=env, timeout=120).returncode == 0

    server = start_gunicorn(env, tmp_path / "gunicorn.log")
    try:
        get_login_pages(server.base, 5)
        assert totals(server.base, scrapes=4) == [5] * 4
        assert not stale.exists()
        assert {f"counter_{pid}.db" for pid in workers(server.process)} <= {path.name for path in folder.iterdir()}
    finally:
        assert_stops_cleanly(server.process)
    assert folder.is_dir(), "the operator's directory stays"
