"""The real Alertmanager (Debian's prometheus-alertmanager) on loopback, and a portal's side of it, for the e2e tests.

Alertmanager is started with clustering off, its storage in the test's folder,
and the route's waits at their minimum, so that an alert posted to its API
reaches the portal within a second or two. The portal's receivers are made
through its admin, as an operator would, and the alertmanager.yml entry the
admin shows is pasted into Alertmanager's configuration as it is.
"""

import contextlib
import html
import json
import os
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.test_health_probes import PASSWORD
from tests.services import Process, free_port, subprocess_env

ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")
# Each alert of these tests its own group (by instance), notified at once, its changes a second later.
ROUTE = """\
route:
  receiver: {default}
  group_by: [instance]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
"""
SHOWN_CONFIG = re.compile(r'<pre class="alertmanager-config">(.*?)</pre>', re.DOTALL)


@contextlib.contextmanager
def runportal(folder: Path, *, tolerated: tuple[str, ...] = (), **settings: str) -> Iterator[str]:
    """`manage.py runportal --no-worker` on a free port (it migrates, and makes the admin account); its base URL.

    Afterwards no exception may be in its log but those of the `tolerated` loggers.
    """
    env = subprocess_env(SECRET_KEY="a" * 60, OPSPORTAL_VAR_DIR=str(folder / "var"),
                         OPSPORTAL_ADMIN_PASSWORD=PASSWORD, DB_CONNECTION_TIMEOUT="2", **settings)  # fmt: skip
    port = free_port()
    portal = Process([sys.executable, "manage.py", "runportal", "--no-worker", "--port", str(port)], env=env,
                     log=folder / "runportal.log")  # fmt: skip
    try:
        portal.wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=300)  # migrating takes a while
        yield f"http://127.0.0.1:{port}"
    finally:
        portal.stop()
    lines = [json.loads(line) for line in portal.output.splitlines() if line.startswith("{")]
    failures = [line for line in lines if "exception" in line and line.get("logger") not in tolerated]
    assert not failures, failures


def alertmanager_or_skip() -> Path:
    if not ALERTMANAGER.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{ALERTMANAGER} is required in CI (Debian's prometheus-alertmanager package)")
        pytest.skip(f"needs {ALERTMANAGER} (apt-get install prometheus-alertmanager); required when CI=true")
    return ALERTMANAGER


def add_receiver(session: httpx.Client, name: str) -> str:
    """Create the receiver in the portal's admin; the alertmanager.yml entry its page shows (token included)."""
    page = session.post(
        "/admin/hooks/alertmanagerreceiver/add/",
        data={"name": name, "enabled": "on", "default_severity": "warning",
              "csrfmiddlewaretoken": session.cookies["csrftoken"]},
    )  # fmt: skip
    assert page.status_code == 200, page.text[-2000:]
    [config] = SHOWN_CONFIG.findall(page.text)
    return html.unescape(config)


def configuration(entries: list[str], routes: dict[str, str] | None = None) -> str:
    """An alertmanager.yml: the first entry's receiver by default, routes[matcher] = receiver, the entries' receivers.

    Each entry is a `receivers:` block as the admin shows it: the first is kept
    whole, the list items of the others are appended to it.
    """
    names = [re.search(r'name: "([^"]+)"', entry).group(1) for entry in entries]
    route = ROUTE.format(default=names[0])
    if routes:
        route += "  routes:\n" + "".join(f"    - receiver: {receiver}\n      matchers: ['{matcher}']\n"
                                         for matcher, receiver in routes.items())  # fmt: skip
    receivers = entries[0] + "".join("\n" + entry.split("\n", 1)[1] for entry in entries[1:])
    return route + receivers + "\n"


class Alertmanager:
    """`prometheus-alertmanager` with the given configuration on a free loopback port; its log is its stderr."""

    def __init__(self, folder: Path, config: str) -> None:
        alertmanager_or_skip()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "alertmanager.yml").write_text(config)
        self.url = f"http://127.0.0.1:{free_port()}"
        args = [
            str(ALERTMANAGER),
            f"--config.file={folder / 'alertmanager.yml'}",
            f"--storage.path={folder / 'data'}",
            f"--web.listen-address={self.url.removeprefix('http://')}",
            "--cluster.listen-address=",  # no gossip: a single Alertmanager
            "--log.level=debug",  # its failed notifications, with the status the portal answered
        ]
        self.process = Process(args, env={"PATH": os.environ.get("PATH", "/usr/bin")}, log=folder / "stderr.log")
        self.process.wait_for_http(f"{self.url}/-/ready", timeout=30)

    @property
    def log(self) -> str:
        return self.process.output

    def post(self, *alerts: dict[str, Any]) -> None:
        """POST /api/v2/alerts, as Prometheus does."""
        response = httpx.post(f"{self.url}/api/v2/alerts", json=list(alerts), timeout=10)
        assert response.status_code == 200, response.text

    def stop(self) -> None:
        self.process.stop()


def firing(instance: str, **labels: str) -> dict[str, Any]:
    """An alert as Prometheus posts it: startsAt is when its rule became active."""
    return {
        "startsAt": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "labels": {"alertname": "E2EDiskFull", "instance": instance, **labels},
        "annotations": {"summary": f"Disk almost full on {instance}", "description": "95% used"},
        "generatorURL": "http://prometheus.example.org/graph?g0.expr=disk",
    }


def ended(alert: dict[str, Any]) -> dict[str, Any]:
    """The same alert with endsAt in the past, as Prometheus posts a resolved alert: Alertmanager resolves it."""
    return {**alert, "endsAt": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()}


def portal_alerts(session: httpx.Client, instance: str) -> list[dict[str, Any]]:
    """The portal's Alertmanager alerts labelled with this instance, through its API (a staff session)."""
    response = session.get("/api/v1/alerts/", params={"source": "alertmanager", "label": f"instance={instance}"})
    assert response.status_code == 200, response.text
    return response.json()["items"]
