"""The live dashboard in a real headless Chromium against a real `manage.py runportal` (embedded mode).

What publishes the live frames, and why: in the embedded mode the channel layer
is in-memory, one per process, so a frame must be published inside the server's
process to reach its sockets. The publishers live there already, so the test adds
none of its own: runportal's embedded beat runs the metrics collector every
MONITORING_INTERVAL_SECONDS (5), which broadcasts a metrics "sample" frame
per tick, and the health checks every HEALTH_INTERVAL_SECONDS (5), whose results
are broadcast as a health "results" frame; acknowledging an alert through the
page is handled by the server, whose alert service broadcasts the alert and the
audit trail its event. The page is never reloaded; every change asserted after
it goes live arrives over the WebSocket.

With Redis (REDIS_URL set), the channel layer is shared between processes, so a
second test publishes a metrics "sample" frame from `manage.py shell -c` (another
process, as a Celery worker would) and watches a tile take its value.

Screenshots are saved under var/test-artifacts/ (gitignored).
"""

import re
import signal

import pytest

from tests.conftest import REDIS_URL
from tests.e2e.portal import PASSWORD, log_in, start_portal
from tests.services import ROOT, Process, free_port, manage, subprocess_env

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "var" / "test-artifacts"
FIRE = (
    "from apps.alerts.services import alert_fire; "
    "print(alert_fire(source='metrics', key='e2e-cpu', severity='critical', summary='CPU above 90 % (e2e)').pk)"
)
TILES_CHANGED = "before => document.querySelector('.dashboard-tiles').innerText !== before"
HEALTH_CHANGED = "before => document.querySelector('.dashboard-health-tiles').innerText !== before"
PUBLISH = (
    "import time; from apps.core.broadcast import broadcast_on_commit; "
    "broadcast_on_commit('metrics', 'sample', {'at': time.time(), 'values': {'system.cpu.percent': 42.4}}); "
    "time.sleep(1)"  # the publisher's thread sends within 0.1 s; the process must outlive it
)
CPU = '[data-series="system.cpu.percent"] [data-field="value"]'
LIVE_MS = 20_000  # connect, subscribe, snapshot; after a restart: backoff (at most 10 s) plus the start-up


@pytest.fixture
def portal_env(var_dir) -> dict:
    return subprocess_env(
        OPSPORTAL_VAR_DIR=var_dir,
        OPSPORTAL_ADMIN_PASSWORD=PASSWORD,
        HEALTH_INTERVAL_SECONDS="5",
        HEALTH_CHECK_TIMEOUT_SECONDS="3",
        MONITORING_INTERVAL_SECONDS="5",  # the default: fewer broker files for the race wait_for_beat names
    )


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def wait_for_state(page, state: str, timeout: float = LIVE_MS) -> None:
    page.wait_for_selector(f'#dashboard[data-state="{state}"]', timeout=timeout)


def wait_for_beat(page, portal: Process, changed: str, before: str) -> None:
    """Wait for a change that the embedded beat's tasks bring; name the cause when the worker died.

    The embedded mode's filesystem broker can hand the worker a message file that
    the beat has created but not written yet; kombu then stops the worker
    ("Unrecoverable error: JSONDecodeError", celery/kombu#1551) and no task runs again.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    try:
        page.wait_for_function(changed, arg=before, timeout=20_000)
    except PlaywrightTimeoutError:
        if "Unrecoverable error" in portal.output:
            raise AssertionError("runportal's embedded Celery worker died (see the log): no task ran") from None
        raise


def open_dashboard(page, base: str) -> None:
    log_in(page, base)
    page.click("text=Live dashboard")  # linked from the admin's index
    page.wait_for_url(f"{base}/admin/dashboard/")
    page.evaluate("window.loadedOnce = true")  # gone if the page ever reloads
    wait_for_state(page, "live")


@pytest.mark.slow
def test_the_dashboard_goes_live_updates_without_reloading_and_reconnects_after_a_restart(page, portal_env, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    portal = start_portal(port, portal_env, tmp_path / "runportal-1.log")
    try:
        fired = manage("shell", "-c", FIRE, env=portal_env)
        assert fired.returncode == 0, fired.stderr
        alert_id = fired.stdout.strip().splitlines()[-1]

        open_dashboard(page, base)
        alert = page.locator(f'[data-alert="{alert_id}"]')  # from the alerts snapshot
        assert "CPU above 90 %" in alert.inner_text()

        # The metrics tiles move: "sample" frames from the beat's collector, inside the server.
        tiles = page.locator(".dashboard-tiles").inner_text()
        wait_for_beat(page, portal, TILES_CHANGED, tiles)

        # A health tile appears or changes: a "results" frame from the beat's run inside the server.
        before = page.locator(".dashboard-health-tiles").inner_text()
        wait_for_beat(page, portal, HEALTH_CHANGED, before)

        # The range picker loads the history over HTTP; live frames keep coming on the same page.
        with page.expect_response(lambda response: "/admin/dashboard/series?range=1h" in response.url) as history:
            page.click('[data-range="1h"]')
        assert history.value.status == 200
        assert page.locator('[data-range="1h"]').get_attribute("aria-pressed") == "true"

        # Acknowledge: the button posts; the server's broadcasts bring the audit event back over the socket.
        alert.locator("button.dashboard-ack").click()
        page.wait_for_selector(f'[data-alert="{alert_id}"].state-acknowledged')
        page.wait_for_selector(".dashboard-audit tbody tr >> text=alert.ack", timeout=10_000)
        shot(page, "live")

        assert portal.stop(signal.SIGTERM) == 0, portal.output[-3000:]
        wait_for_state(page, "reconnecting", timeout=10_000)
        shot(page, "reconnecting")
        portal = start_portal(port, portal_env, tmp_path / "runportal-2.log")
        wait_for_state(page, "live")
        assert re.search(r"\balert\.ack\b", page.locator(".dashboard-audit").inner_text())  # the fresh snapshot
        assert page.evaluate("window.loadedOnce") is True, "the page reloaded instead of reconnecting"
        shot(page, "reconnected")
    finally:
        portal.stop(signal.SIGTERM)


@pytest.mark.redis
@pytest.mark.slow
def test_a_metrics_sample_published_by_another_process_changes_a_tile_live(page, var_dir, tmp_path):
    # No worker: it would take other tests' tasks from the shared Redis.
    env = subprocess_env(
        OPSPORTAL_VAR_DIR=var_dir, OPSPORTAL_ADMIN_PASSWORD=PASSWORD, REDIS_URL=REDIS_URL, SECRET_KEY="e" * 60
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    portal = start_portal(port, env, tmp_path / "runportal.log", "--no-worker")
    try:
        open_dashboard(page, base)
        assert page.locator(CPU).inner_text() != "42.4"
        published = manage("shell", "-c", PUBLISH, env=env)
        assert published.returncode == 0, published.stderr
        page.locator(f'{CPU}:text-is("42.4")').wait_for(timeout=10_000)
        assert page.evaluate("window.loadedOnce") is True
        shot(page, "metrics-frame")
    finally:
        portal.stop(signal.SIGTERM)
