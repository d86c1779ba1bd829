"""The Alertmanager hook while PostgreSQL is unreachable: 503, Alertmanager retries, the alert arrives once it is back;
the API answers 503 too.

A real `manage.py runportal` reaches its scratch PostgreSQL database through a
loopback forwarder (tests/faults/forwarder.py) that the test takes down; the real
Alertmanager (tests/hooks/alertmanager_support.py) notifies it meanwhile.
"""

import contextlib
import json
import os
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.audit.conftest import scratch_postgres_url
from tests.faults.harness import hard_timeout, wait_until
from tests.faults.test_health_probes import forwarder_to, logged_in, through
from tests.hooks.alertmanager_support import (
    Alertmanager,
    add_receiver,
    alertmanager_or_skip,
    configuration,
    firing,
    portal_alerts,
    runportal,
)
from tests.metrics.test_export import samples
from tests.services import manage, subprocess_env

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def unavailable_answers(log: str) -> int:
    """How many hook requests the portal refused for want of its database (its JSON log lines)."""
    lines = (json.loads(line) for line in log.splitlines() if line.startswith("{"))
    return sum(1 for line in lines if line.get("event") == "hook_database_unavailable")


def api_token(folder: Path, database_url: str) -> str:
    """A read token of the portal's admin, made by `manage.py api token create` on its database."""
    env = subprocess_env(SECRET_KEY="a" * 60, OPSPORTAL_VAR_DIR=str(folder / "var"), DATABASE_URL=database_url)
    made = manage("api", "token", "create", "--user", "admin", "--scope", "read", "--json", env=env)
    assert made.returncode == 0, made.stderr
    return json.loads(made.stdout)["token"]


def test_with_postgresql_unreachable_the_hook_answers_503_and_the_alert_arrives_once_it_is_back(tmp_path):
    alertmanager_or_skip()
    forwarder = forwarder_to(os.environ["DATABASE_URL"], 5432)
    instance = f"db-{uuid.uuid4().hex[:8]}"
    with (
        hard_timeout(240, "the Alertmanager hook during a PostgreSQL outage"),
        scratch_postgres_url(os.environ["DATABASE_URL"]) as database_url,
        # The connection pool, as in production: a request waits DB_CONNECTION_TIMEOUT (2 s here) for a
        # connection before its 503, within the 10 s Alertmanager gives a notification.
        # The audit sealer and the metrics reporter lose their database too: they log that, and retry.
        runportal(
            tmp_path,
            DATABASE_URL=through(forwarder, database_url),
            tolerated=("apps.audit.sealer", "apps.metrics.reporting"),
        ) as base,
        contextlib.closing(logged_in(base)) as session,
    ):
        alertmanager = Alertmanager(tmp_path / "alertmanager", configuration([add_receiver(session, "outage")]))
        token = api_token(tmp_path, database_url)
        try:
            forwarder.down()
            api = httpx.get(f"{base}/api/v1/alerts/", headers={"Authorization": f"Bearer {token}"}, timeout=30)
            alertmanager.post(firing(instance))
            log = tmp_path / "runportal.log"
            wait_until(lambda: unavailable_answers(log.read_text()) >= 2, 30, "Alertmanager's retry after a 503")

            forwarder.up()
            [alert] = wait_until(lambda: portal_alerts(session, instance), 30, "the alert once PostgreSQL is back")
        finally:
            alertmanager.stop()
        scraped = samples(session.get("/metrics").text)
        with psycopg.connect(database_url) as db:  # directly, not through the forwarder
            deliveries = db.execute("SELECT fingerprint, status FROM hooks_alertmanagerdelivery").fetchall()

    assert (api.status_code, api.headers["content-type"]) == (503, "application/problem+json")
    assert api.headers["retry-after"] == "10" and "database is unavailable" in api.json()["detail"]
    assert (alert["state"], alert["fire_count"]) == ("firing", 1)
    retried = [line for line in alertmanager.log.splitlines() if "Notify attempt failed" in line]
    assert retried and all("503" in line for line in retried), alertmanager.log[-3000:]
    assert scraped[("opsportal_hooks_rejected_total", (("hook", "alertmanager"), ("reason", "unavailable")))] >= 2
    assert deliveries == [(alert["key"], "firing")], "the refused attempts stored nothing"
    forwarder.down()
