"""The whole write side in a real runportal: the middleware, the reporter thread, beat's collector, the store."""

import json
import signal
import sys
import time

import httpx
import pytest

from tests.services import Process, free_port, manage, subprocess_env


def series(env: dict) -> dict[str, float]:
    result = manage("metrics", "series", "--json", env=env)
    assert result.returncode in (0, 1), result.stderr
    return {row["name"]: row["last_value"] for row in json.loads(result.stdout or "[]")}


@pytest.mark.slow
def test_requests_to_a_running_portal_become_series_within_a_few_intervals(tmp_path, var_dir):
    port = free_port()
    env = subprocess_env(OPSPORTAL_VAR_DIR=var_dir, MONITORING_INTERVAL_SECONDS="1")
    portal = Process([sys.executable, "manage.py", "runportal", "--port", str(port)], env=env, log=tmp_path / "log")
    try:
        portal.wait_for_http(f"http://127.0.0.1:{port}/admin/login/")
        for _ in range(20):
            assert httpx.get(f"http://127.0.0.1:{port}/admin/login/").status_code == 200
        deadline, found = time.monotonic() + 30, {}
        while time.monotonic() < deadline and 'http.latency.p95.ms{view="admin:login"}' not in found:
            time.sleep(1)
            found = series(env)
    finally:
        code = portal.stop(signal.SIGTERM)

    assert 0 < found['http.latency.p95.ms{view="admin:login"}'] < 10_000, found
    assert found[f'process.rss.bytes{{process="web-{portal.popen.pid}"}}'] > 1_000_000
    assert 0 <= found["system.cpu.percent"] <= 100 and found["metrics.collect.ms"] > 0
    assert code == 0 and "Traceback" not in portal.output
