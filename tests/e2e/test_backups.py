"""Issue 8's "done when", in a real headless Chromium against a fresh `manage.py runportal` (what `make run` starts).

An admin creates a policy in the admin form (the portal's database and a folder
of files), presses its "Run now", watches the backup live, sees it verified,
presses "Drill now" and sees the drill pass, all without reloading a page.

Two tabs of one session: the backups list, opened first, is subscribed to the
"backups" topic before the run starts, so it receives every phase's progress
frame however fast the backup is (a phase change is always sent); the policy's
page, which each button redirects to, may subscribe after a small backup has
finished, and then shows how it ended from the topic's snapshot.

Embedded mode (SQLite, in-process worker and channel layer) always; with
DATABASE_URL and REDIS_URL set, also the production mode: a scratch PostgreSQL
database, channels-redis, Celery on Redis (runportal's worker).
"""

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import REDIS_URL
from tests.core.test_runportal import scratch_database  # noqa: F401 - a fixture, for the production mode
from tests.e2e.portal import PASSWORD, log_in, start_portal
from tests.services import ROOT, free_port, subprocess_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ARTIFACTS = ROOT / "var" / "test-artifacts"
POLICY = "e2e-nightly"
LIVE = "#backups-live tbody tr"
BACKUP_MS = 30_000  # the worker picks the task up, dumps, archives, verifies (PostgreSQL: pg_dump)


@pytest.fixture(params=["embedded", pytest.param("production", marks=[pytest.mark.postgres, pytest.mark.redis])])
def portal(request, var_dir, tmp_path) -> Iterator[str]:
    """A fresh portal (empty var dir, new database) with its worker; yields its base URL."""
    env = {"OPSPORTAL_VAR_DIR": var_dir, "OPSPORTAL_ADMIN_PASSWORD": PASSWORD}
    if request.param == "production":
        env |= {"DATABASE_URL": request.getfixturevalue("scratch_database"), "REDIS_URL": REDIS_URL,
                "SECRET_KEY": "e2e-backups-" + "s" * 52}  # fmt: skip
    port = free_port()
    process = start_portal(port, subprocess_env(**env), tmp_path / "runportal.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop(signal.SIGTERM)


@pytest.fixture
def files(tmp_path) -> Path:
    """A small folder for the policy to archive."""
    folder = tmp_path / "files"
    (folder / "reports").mkdir(parents=True)
    (folder / "reports" / "2026-11.csv").write_text("day,requests\n" + "".join(f"{d},{d * 37}\n" for d in range(1, 31)))
    (folder / "logo.png").write_bytes(b"\x89PNG" + bytes(range(256)) * 16)
    return folder


def frames_of(tab) -> list[dict]:
    """Every message the tab's sockets receive from now on, parsed (the page's own view of the topic)."""
    received: list[dict] = []
    tab.on("websocket", lambda socket: socket.on("framereceived", lambda text: received.append(json.loads(text))))
    return received


def create_policy(tab, base: str, folder: Path) -> None:
    tab.goto(f"{base}/admin/backups/backuppolicy/add/")
    tab.fill("#id_name", POLICY)
    tab.locator("#id_databases input[value='default']").check()
    tab.fill("#id_paths", str(folder))
    tab.click("input[name=_continue]")  # "Save and continue editing": the policy's page, with its buttons
    expect(tab.locator(".messagelist")).to_contain_text("was added successfully")


def test_an_admin_creates_a_policy_runs_it_watches_it_live_and_drills_it(page, portal, files):
    base = portal
    log_in(page, base)
    watcher = page.context.new_page()  # the backups list, subscribed before anything runs
    seen = frames_of(watcher)
    with watcher.expect_websocket() as opened:
        watcher.goto(f"{base}/admin/backups/backup/")
    opened.value.wait_for_event("framereceived", predicate=is_the_snapshot)
    watcher.evaluate("window.loadedOnce = true")  # gone if the page ever reloads
    expect(watcher.locator("#backups-live")).to_be_hidden()  # nothing runs

    create_policy(page, base, files)
    page.click("button[name=do][value=run]")

    expect(page.locator(".messagelist")).to_contain_text(f"Queued a backup of 1 policy ({POLICY})")
    for tab in (page, watcher):
        backup = tab.locator(f"{LIVE}[data-operation=backup]")
        expect(backup).to_have_attribute("data-status", "succeeded", timeout=BACKUP_MS)
        expect(backup).to_contain_text("done, verified OK")
        expect(backup).to_contain_text(POLICY)
    # Each phase's first frame is always sent; byte counts within a phase at most 4 times a second (a small
    # backup's dump can be over before one is due), so what is sure is the phases and the size being verified.
    progress = [frame["data"] for frame in seen if is_about(frame, "backup", "progress")]
    phases = [data["phase"] for data in progress]
    assert phases.index("dump:default") < phases.index("files") < phases.index("verify"), phases
    assert next(data["total"] for data in progress if data["phase"] == "verify") > 0

    page.click("button[name=do][value=drill]")

    expect(page.locator(".messagelist")).to_contain_text(f"Queued a restore drill of 1 policy ({POLICY})")
    for tab in (page, watcher):
        drill = tab.locator(f"{LIVE}[data-operation=drill]")
        expect(drill).to_have_attribute("data-status", "succeeded", timeout=BACKUP_MS)
        expect(drill).to_contain_text("passed (")
        expect(drill).to_have_class("backups-live-succeeded")  # green
    assert any(is_about(frame, "drill", "finished") for frame in seen)
    assert watcher.evaluate("window.loadedOnce") is True, "the backups list reloaded instead of updating live"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "backups-drilled.png"), full_page=True)


def is_the_snapshot(text: str | bytes) -> bool:
    frame = json.loads(text)
    return frame.get("topic") == "backups" and frame.get("type") == "snapshot"


def is_about(frame: dict, operation: str, kind: str) -> bool:
    data = frame.get("data") or {}
    return frame.get("topic") == "backups" and frame.get("type") == kind and data.get("operation") == operation and (
        data.get("policy") == POLICY)  # fmt: skip
