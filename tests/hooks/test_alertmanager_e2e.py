"""Issue 9's Alertmanager hook end to end: the real Alertmanager notifying a real `manage.py runportal`.

The portal runs in embedded mode (its SQLite database in the test's folder). Its
receivers are made through the admin, and the alertmanager.yml entries the admin
shows go into Alertmanager's configuration as they are, one of them with its
token replaced by a wrong one. Alerts are posted to Alertmanager's API v2, as
Prometheus posts them; the portal's side is read through its API and its database.
(The PostgreSQL outage is in tests/faults/test_alertmanager_outage.py.)
"""

import contextlib
import re
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.faults.harness import hard_timeout, wait_until
from tests.faults.test_health_probes import logged_in
from tests.hooks.alertmanager_support import (
    Alertmanager,
    add_receiver,
    alertmanager_or_skip,
    configuration,
    ended,
    firing,
    portal_alerts,
    runportal,
)
from tests.metrics.test_export import samples

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("alertmanager_e2e")]

ARRIVES = 20  # seconds; it takes one or two in practice (group_wait 0 s, group_interval 1 s)


@dataclass
class Installation:
    folder: Path
    session: httpx.Client  # the portal's admin, logged in
    alertmanager: Alertmanager

    def stored(self, sql: str, *params: object) -> list[tuple]:
        """Read the portal's SQLite database directly (read-only; WAL lets it run beside the portal)."""
        path = self.folder / "var" / "opsportal.sqlite3"
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return db.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Iterator[Installation]:
    """One portal and one Alertmanager for the module: receiver "e2e" (its token), "e2e-wrong" (a wrong token)."""
    alertmanager_or_skip()
    folder = tmp_path_factory.mktemp("alertmanager-e2e")
    with hard_timeout(180, "starting the portal and Alertmanager"), runportal(folder) as base:
        session = logged_in(base)
        right = add_receiver(session, "e2e")
        wrong = re.sub(r'credentials: "[^"]+"', 'credentials: "opam_not-the-token"', add_receiver(session, "e2e-wrong"))
        config = configuration([right, wrong], routes={'team="wrong"': "opsportal-e2e-wrong"})
        alertmanager = Alertmanager(folder / "alertmanager", config)
        try:
            yield Installation(folder, session, alertmanager)
        finally:
            alertmanager.stop()
            session.close()


def test_an_alert_fired_in_alertmanager_fires_in_the_portal_and_its_end_resolves_it(installed):
    instance = f"db-{uuid.uuid4().hex[:8]}"
    alert = firing(instance, severity="critical")

    with hard_timeout(2 * ARRIVES + 10, "an alert and its resolve"):
        installed.alertmanager.post(alert)
        [fired] = wait_until(lambda: portal_alerts(installed.session, instance), ARRIVES, "the alert in the portal")
        installed.alertmanager.post(ended(alert))
        wait_until(lambda: portal_alerts(installed.session, instance)[0]["state"] == "resolved", ARRIVES, "the resolve")

    assert (fired["state"], fired["severity"], fired["fire_count"]) == ("firing", "critical", 1)
    assert fired["summary"] == f"Disk almost full on {instance}"
    assert fired["labels"] == {"alertname": "E2EDiskFull", "instance": instance, "severity": "critical",
                               "receiver": "e2e"}  # fmt: skip
    rows = installed.stored(
        "SELECT d.status, d.fingerprint FROM hooks_alertmanagerdelivery d JOIN hooks_alertmanagerreceiver r"
        " ON r.id = d.receiver_id WHERE r.name = 'e2e' AND d.fingerprint = ? ORDER BY d.id",
        fired["key"],
    )
    assert [status for status, _ in rows] == ["firing", "resolved"]


def test_a_wrong_token_is_logged_by_alertmanager_and_nothing_is_stored(installed):
    instance = f"db-{uuid.uuid4().hex[:8]}"

    with hard_timeout(ARRIVES + 10, "a refused notification"):
        installed.alertmanager.post(firing(instance, team="wrong"))
        failure = wait_until(lambda: failed_notifications(installed.alertmanager.log), ARRIVES, "Alertmanager's error")

    assert "opsportal-e2e-wrong" in failure[0] and "401" in failure[0], failure
    assert portal_alerts(installed.session, instance) == []
    assert installed.stored(
        "SELECT count(d.id), max(r.last_received_at) FROM hooks_alertmanagerreceiver r"
        " LEFT JOIN hooks_alertmanagerdelivery d ON d.receiver_id = r.id WHERE r.name = 'e2e-wrong'"
    ) == [(0, None)]
    scraped = samples(installed.session.get("/metrics").text)
    assert scraped[("opsportal_hooks_rejected_total", (("hook", "alertmanager"), ("reason", "unauthorized")))] >= 1


def failed_notifications(log: str) -> list[str]:
    """Alertmanager's log lines about a notification that failed."""
    return [line for line in log.splitlines() if "level=error" in line and "Notify for alerts failed" in line]
