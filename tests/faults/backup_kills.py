"""`manage.py backup run` SIGKILLed at random points, and what each kill must leave behind; shared by
tests/faults/test_backup_faults.py (a few points) and bench/backup_faults.py (20 points).

The portal is a harness.Portal (a scratch PostgreSQL database, production settings
from the environment) with BACKUP_DIR in its folder and the default policy backing
up the database (seeded with bench/backup_seed.py's shop tables) and MEDIA_ROOT.

A clean run first measures how long a backup takes from its record's creation to
the process's exit. Then, for each point: the run is started, and once its RUNNING
record exists it is SIGKILLed (the process with pg_dump and any other child, as the
OOM killer or a lost node would) at a random moment (seeded RNG) of the point's
slice of that duration: the run is cut into `points` equal slices, so that every
phase is hit (the dump, the files archive, the manifest, the verify, the pruning).
Right after each kill the storage must hold no artifact under its final name in a
folder without a complete manifest (both copies, equal, every artifact present with
its recorded size and sha256); a run writes under "<policy>/.staging/" and publishes
the whole folder at the end, so what a kill leaves there is partial, as temp files
are. The run lease the killed process held is then expired in the database (it
would lapse by itself after BACKUP_LOCK_SECONDS; the test does not wait 5 minutes),
and the next run must clean up: the killed record `failed`, an alert fired for it
(alert_fire called: the alert's (episode, fire_count) grew; firing an alert that is
still firing makes no transition), no partial file (but the next run's own), no
folder of it left, staged or final. A last run completes to show the policy healthy again.

This module does not import Django: the portal's code runs in its own processes.
"""

import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.faults.harness import Portal, wait_until
from tests.services import ROOT

POLICY = "default"
PART = ".part"  # a storage writer's temporary name contains it (apps/backups/storage.py)
STAGING = ".staging"  # "<policy>/.staging/<stamp>-<id>/": a run's files before it publishes them (services.py)
MANIFESTS = ("manifest.json", "manifest.copy.json")


def start_run(site: Portal) -> subprocess.Popen:
    """`manage.py backup run --policy default --json` in a session of its own (killpg reaches its children)."""
    with open(site.folder / "backup-runs.log", "ab") as output:
        return subprocess.Popen(
            [sys.executable, "manage.py", "backup", "run", "--policy", POLICY, "--json"],
            cwd=ROOT,
            env=site.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def newest_id(site: Portal) -> int:
    return site.query("SELECT coalesce(max(id), 0) FROM backups_backup")[0][0]


def expire_lease(site: Portal) -> None:
    """What BACKUP_LOCK_SECONDS of waiting would do to a killed run's lease."""
    site.query(
        "UPDATE backups_backuppolicy SET lock_expires_at = now() - interval '1 second'"
        " WHERE name = %s AND lock_expires_at IS NOT NULL RETURNING id",
        POLICY,
    )


def wait_for_record(site: Portal, after: int, process: subprocess.Popen, timeout: float = 60) -> tuple[int, float]:
    """The id of the run's record once it exists (newer than `after`), and the monotonic time it was seen."""

    def created() -> int | None:
        if process.poll() is not None:
            raise AssertionError(f"backup run exited with {process.returncode} before creating its record")
        return newest_id(site) if newest_id(site) > after else None

    backup_id = wait_until(created, timeout, "the backup record", poll=0.005)
    return backup_id, time.monotonic()


def clean_run(site: Portal, timeout: float = 600) -> dict[str, Any]:
    """A run to the end: its exit status, record, and seconds from the record's creation to the exit."""
    before = newest_id(site)
    process = start_run(site)
    backup_id, seen = wait_for_record(site, before, process)
    code = process.wait(timeout)
    return {"exit": code, "backup_id": backup_id, "seconds": time.monotonic() - seen, "record": record(site, backup_id)}


def record(site: Portal, backup_id: int) -> dict[str, Any]:
    [(status, location, error, verification)] = site.query(
        "SELECT status, location, error, verification FROM backups_backup WHERE id = %s", backup_id
    )
    return {"id": backup_id, "status": status, "location": location, "error": error, "verification": verification}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def staged(location: str) -> str:
    """The staging folder of the backup whose final folder is location."""
    policy, _, name = location.rpartition("/")
    return f"{policy}/{STAGING}/{name}"


def storage_problems(backup_dir: Path, running: str | None = None) -> dict[str, list[str]]:
    """What the local storage holds that a crash must not leave: "orphans" are files under a final name in a
    folder without a complete manifest, "partials" temporary or staged files (allowed right after a kill,
    not after a run). The files of the run in progress at `running` (its location) are not counted."""
    problems: dict[str, list[str]] = {"orphans": [], "partials": []}
    if not backup_dir.exists():
        return problems
    ignored = {backup_dir / running, backup_dir / staged(running)} if running else set()
    folders = {path.parent for path in backup_dir.rglob("*") if path.is_file()} - ignored
    for folder in sorted(folders):
        names = sorted(path.name for path in folder.iterdir() if path.is_file())
        is_staged = STAGING in folder.relative_to(backup_dir).parts or PART in str(folder.relative_to(backup_dir))
        problems["partials"] += [str(folder / name) for name in names if PART in name or is_staged]
        final = [name for name in names if PART not in name and not is_staged]
        if final and not complete_manifest(folder, final):
            problems["orphans"] += [str(folder / name) for name in final]
    return problems


def complete_manifest(folder: Path, final: list[str]) -> bool:
    """Both manifest copies, equal, listing exactly the other final files with their sizes and sha256."""
    if not all(name in final for name in MANIFESTS):
        return False
    first, copy = ((folder / name).read_bytes() for name in MANIFESTS)
    if first != copy:
        return False
    artifacts = json.loads(first)["artifacts"]
    if sorted(artifact["name"] for artifact in artifacts) != sorted(set(final) - set(MANIFESTS)):
        return False
    return all(
        (folder / a["name"]).stat().st_size == a["size"] and sha256(folder / a["name"]) == a["sha256"]
        for a in artifacts
    )


def alert_firings(site: Portal) -> tuple[int, int]:
    """(episode, fire_count) of the policy's backup alert: it grows with every alert_fire, even of a firing alert
    (which makes no transition); (0, 0) before the first."""
    rows = site.query("SELECT episode, fire_count FROM alerts_alert WHERE source = 'backups' AND key = %s", POLICY)
    return tuple(rows[0]) if rows else (0, 0)


def alert_state(site: Portal) -> str | None:
    rows = site.query("SELECT state FROM alerts_alert WHERE source = 'backups' AND key = %s", POLICY)
    return rows[0][0] if rows else None


def after_next_run(site: Portal, kill: dict, firings: tuple[int, int], running: str | None) -> dict[str, Any]:
    """What the next run (still running at `running`, or done: None) made of a kill: the record, whether an
    alert fired since, what is left on disk (its final or staging folder: the names in it, None if gone)."""
    backup_dir = Path(site.env["BACKUP_DIR"])
    location = kill["record"]["location"]
    folders = [folder for folder in (backup_dir / location, backup_dir / staged(location)) if folder.is_dir()]
    return {
        "record": record(site, kill["backup_id"]),
        "alert_fired": alert_firings(site) > firings,
        "alert_state": alert_state(site),
        "leftovers": storage_problems(backup_dir, running)["partials"],
        "folder_left": sorted(path.name for folder in folders for path in folder.iterdir()) if folders else None,
    }


def kill_runs(site: Portal, *, points: int, seed: int, log: Callable[[str], None] = lambda message: None) -> dict:
    """A clean run, `points` runs SIGKILLed at random moments, a last clean run; what each left behind."""
    backup_dir = Path(site.env["BACKUP_DIR"])
    first = clean_run(site)
    if first["exit"] != 0 or first["record"]["status"] != "succeeded":
        raise AssertionError(f"the first, clean run failed: {first}\n{site.log('backup-runs.log')[-3000:]}")
    duration = first["seconds"]
    log(f"a clean run takes {duration:.2f} s from its record to its exit")
    rng = random.Random(seed)
    kills: list[dict[str, Any]] = []
    for point in range(points):
        expire_lease(site)
        before = newest_id(site)
        firings = alert_firings(site)
        process = start_run(site)
        backup_id, seen = wait_for_record(site, before, process)
        # The run has cleaned up after the previous kill by now (it does so before creating its record).
        previous = kills[-1] if kills else None
        if previous is not None:
            previous["next_run"] = after_next_run(site, previous, firings, record(site, backup_id)["location"])
        delay = duration * (point + rng.random()) / points  # a random moment in each slice of the run
        time.sleep(max(0.0, seen + delay - time.monotonic()))
        exited = process.poll()
        with contextlib.suppress(ProcessLookupError):  # the run had already ended: nothing left to kill
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        kill = {
            "point": point,
            "backup_id": backup_id,
            "after_seconds": round(delay, 3),
            "exited_before_kill": exited,
            "record": record(site, backup_id),
            "storage": storage_problems(backup_dir),
        }
        kills.append(kill)
        log(f"  kill {point + 1}/{points} at {delay:.2f} s: the record was {kill['record']['status']}")
    expire_lease(site)
    firings = alert_firings(site)
    last = clean_run(site)
    if kills:
        kills[-1]["next_run"] = after_next_run(site, kills[-1], firings, None)
    return {
        "duration": duration,
        "kills": kills,
        "last": last,
        "storage_after": storage_problems(backup_dir),
        "alert_state_after": alert_state(site),
        "log": site.log("backup-runs.log")[-3000:],
    }


def violations(result: dict) -> list[str]:
    """Every way the runs broke the rules, in words (empty: none)."""
    found = []
    for kill in result["kills"]:
        where = f"kill {kill['point'] + 1} ({kill['after_seconds']} s, record {kill['record']['status']})"
        if kill["storage"]["orphans"]:
            found.append(f"{where}: artifacts under a final name without a complete manifest: {kill['storage']}")
        interrupted = kill["record"]["status"] == "running"
        after = kill["next_run"]
        if interrupted:
            if after["record"]["status"] != "failed" or not after["record"]["error"]:
                found.append(f"{where}: after the next run the record is {after['record']} (want failed, a reason)")
            if not after["alert_fired"]:
                found.append(f"{where}: the next run marked it {after['record']['status']} but fired no alert")
            if after["folder_left"]:
                found.append(f"{where}: the interrupted backup's files are still there: {after['folder_left']}")
            elif after["folder_left"] is not None:
                found.append(f"{where}: the interrupted backup's folder is left behind, empty")
        elif kill["record"]["status"] == "failed":
            found.append(f"{where}: a killed process cannot have recorded its own failure: {kill['record']}")
        if after["leftovers"]:
            found.append(f"{where}: partial files left after the next run: {after['leftovers']}")
    last = result["last"]
    if last["exit"] != 0 or last["record"]["status"] != "succeeded" or last["record"]["verification"] != "ok":
        found.append(f"the last, clean run: {last}\n{result['log']}")
    if result["storage_after"]["orphans"] or result["storage_after"]["partials"]:
        found.append(f"after the last run the storage still holds: {result['storage_after']}")
    if result["alert_state_after"] not in (None, "resolved"):
        found.append(f"after the last, clean run the alert is {result['alert_state_after']}")
    return found
