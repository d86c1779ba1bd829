"""`manage.py backup` through call_command, and as a real process for its exit status (what cron sees)."""

import io
import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pyrage
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.backups.lease import Lease
from apps.backups.models import Backup, BackupPolicy, Status, Trigger, Verification
from tests.services import manage, subprocess_env

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def small_policy(settings, tmp_path) -> BackupPolicy:
    """The default policy, backing up the test database and a tiny media folder into a folder of the test's own."""
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.BACKUP_STORAGES = {"local": {"kind": "local", "path": settings.BACKUP_DIR}}
    settings.BACKUP_SCRATCH_DIR = tmp_path / "scratch"
    settings.MEDIA_ROOT = tmp_path / "media"
    (settings.MEDIA_ROOT / "avatars").mkdir(parents=True)
    (settings.MEDIA_ROOT / "avatars" / "alice.png").write_bytes(b"\x89PNG" + bytes(range(256)) * 8)
    return BackupPolicy.objects.get(name="default")


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("backup", *args, stdout=out, stderr=err)
    except SystemExit as exit:
        return exit.code, out.getvalue(), err.getvalue()
    except CommandError as error:
        return error.returncode, out.getvalue(), f"{err.getvalue()}{error}"
    return 0, out.getvalue(), err.getvalue()


class Terminal(io.StringIO):
    """What a person types, at a terminal."""

    def isatty(self) -> bool:
        return True


def backup_now() -> Backup:
    code, out, err = run("run", "--json")
    assert code == 0, (out, err)
    return Backup.objects.get(pk=json.loads(out)["id"])


# ---------------------------------------------------------------- run, list, verify


def test_run_backs_up_the_default_policy_and_prints_json():
    code, out, _ = run("run", "--json")

    data = json.loads(out)
    assert code == 0
    assert data["policy"] == "default" and data["status"] == "succeeded" and data["verification"] == "ok"
    backup = Backup.objects.get(pk=data["id"])
    assert backup.trigger == Trigger.MANUAL and data["size_bytes"] == backup.size_bytes > 0
    assert AuditEvent.objects.filter(action="backup.run").exists()


def test_run_prints_a_line_for_people(capsys):
    code, out, err = run("run")

    assert code == 0 and "Backup" in out and "succeeded" in out
    assert "\r" not in err  # not a terminal: no progress bar


def test_run_while_another_holds_the_lock_exits_3(small_policy):
    Lease.acquire(small_policy)

    code, _, err = run("run")

    assert code == 3 and "busy" in err and "already running" in err
    assert not Backup.objects.exists()


def test_list_shows_backups_newest_first_as_a_table_and_as_json():
    first, second = backup_now(), backup_now()

    code, out, _ = run("list", "--json")
    rows = json.loads(out)
    assert code == 0 and [row["id"] for row in rows] == [second.pk, first.pk]
    assert {"id", "policy", "status", "verification", "size_bytes", "location", "started_at"} <= set(rows[0])
    table = run("list", "--policy", "default")[1].splitlines()
    assert table[0].startswith("ID") and str(second.pk) in table[1] and "succeeded" in table[1]


def test_verify_one_backup_all_of_them_and_a_sample():
    backup = backup_now()

    code, out, _ = run("verify", str(backup.pk), "--json")
    assert code == 0 and json.loads(out)[0]["ok"] is True
    code, out, _ = run("verify", "--all", "--json")
    assert code == 0 and [r["backup_id"] for r in json.loads(out)] == [backup.pk]
    code, out, _ = run("verify", "--all", "--sample", "50%")
    assert code == 0 and "OK" in out


def test_verify_exits_1_when_a_stored_byte_changed(settings):
    backup = backup_now()
    artifact = next(Path(settings.BACKUP_DIR, backup.location).glob("db-*"))
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0x01
    artifact.write_bytes(bytes(data))

    code, out, _ = run("verify", str(backup.pk))

    assert code == 1 and "FAILED" in out and artifact.name in out
    backup.refresh_from_db()
    assert backup.verification == Verification.FAILED


def test_verify_with_nothing_stored_exits_1():
    code, out, _ = run("verify", "--all")

    assert code == 1 and "Nothing to verify" in out


# ---------------------------------------------------------------- drill, prune, restore


def test_drill_restores_the_newest_backup_and_prints_its_checks():
    backup = backup_now()

    code, out, _ = run("drill", "--json")

    data = json.loads(out)
    assert code == 0, data
    assert data["backup_id"] == backup.pk and data["status"] == "succeeded" and data["checks"]
    assert all(check["ok"] for check in data["checks"])


def test_prune_dry_run_says_what_it_would_delete_and_why_the_rest_stay(small_policy):
    BackupPolicy.objects.filter(pk=small_policy.pk).update(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)
    older, newer = backup_now(), backup_now()

    code, out, _ = run("prune", "--dry-run", "--json")
    [result] = json.loads(out)
    assert code == 0 and result["dry_run"] is True
    assert [e["id"] for e in result["keep"]] == [newer.pk] and [e["id"] for e in result["delete"]] == [older.pk]
    text = run("prune", "--dry-run")[1]
    assert "would delete 1" in text and "keep" in text
    assert Backup.objects.filter(pruned_at__isnull=True).count() == 2

    code, out, _ = run("prune", "--policy", "default")
    assert code == 0 and "deleted 1" in out
    older.refresh_from_db()
    assert older.pruned_at is not None


def test_restore_into_another_sqlite_file(tmp_path):
    backup = backup_now()
    target = tmp_path / "restored.sqlite3"

    code, out, err = run("restore", str(backup.pk), "--target", str(target), "--json")

    assert code == 0, err
    assert json.loads(out) is not None
    with sqlite3.connect(target) as restored:
        assert restored.execute("SELECT COUNT(*) FROM backups_backuppolicy").fetchone()[0] >= 1
    assert AuditEvent.objects.filter(action="backup.restore").exists()


def test_restore_in_place_without_a_terminal_needs_yes():
    backup = backup_now()

    code, _, err = run("restore", str(backup.pk), "--in-place")

    assert code == 2 and "--yes" in err
    assert not Backup.objects.filter(trigger=Trigger.PRE_RESTORE).exists()


def test_restore_in_place_asks_for_the_policy_name(monkeypatch):
    backup = backup_now()
    monkeypatch.setattr("sys.stdin", Terminal("nightly\n"))

    code, _, err = run("restore", str(backup.pk), "--in-place")

    assert code == 1 and "Type the policy's name (default)" in err and "not confirmed" in err
    assert not Backup.objects.filter(trigger=Trigger.PRE_RESTORE).exists()


# ---------------------------------------------------------------- keygen and bad input


def test_keygen_prints_an_identity_and_its_recipient():
    code, out, err = run("keygen")
    identity = pyrage.x25519.Identity.from_str(out.strip().splitlines()[-1])
    assert code == 0 and str(identity.to_public()) in err and str(identity.to_public()) in out

    code, out, _ = run("keygen", "--json")
    pair = json.loads(out)
    assert str(pyrage.x25519.Identity.from_str(pair["identity"]).to_public()) == pair["recipient"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--policy", "nope"], "no backup policy named 'nope' (policies: default)"),
        (["drill", "--policy", "nope"], "no backup policy named 'nope'"),
        (["verify", "999"], "no backup with ID 999"),
        (["restore", "999", "--target", "/tmp/x.sqlite3"], "no backup with ID 999"),
        (["verify", "--all", "--sample", "150"], "not a percentage from 1 to 100"),
        (["verify", "0"], "not a whole number"),
        (["verify"], "one of the arguments id --all is required"),
        (["restore", "1"], "one of the arguments --target --in-place is required"),
        (["restore", "1", "--target", "x", "--in-place"], "not allowed with argument"),
        (["list", "--limit", "many"], "not a whole number"),
    ],
)
def test_bad_input_is_a_usage_error_with_a_clear_message(args, message):
    code, _, err = run(*args)

    assert message in err
    assert code in (1, 2)  # under call_command argparse's errors are CommandError(1); a real process exits 2


def test_an_unreadable_identity_file_is_a_usage_error(tmp_path):
    backup = backup_now()
    not_a_key = tmp_path / "key.txt"
    not_a_key.write_text("hello")

    for path, message in ((tmp_path / "missing.txt", "cannot read the identity file"), (not_a_key, "no age identity")):
        code, _, err = run("restore", str(backup.pk), "--target", str(tmp_path / "t.sqlite3"), "--identity", str(path))
        assert code == 2 and message in err


def test_as_a_real_process_exit_status_means_something(tmp_path):
    env = subprocess_env(OPSPORTAL_VAR_DIR=str(tmp_path), BACKUP_DIR=str(tmp_path / "backups"))
    for args in (["bogus"], ["verify"], ["restore", "1"], ["verify", "--all", "--sample", "0"], []):
        result = manage("backup", *args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and result.stderr.strip()
    assert manage("migrate", "-v0", env=env).returncode == 0

    unknown = manage("backup", "run", "--policy", "nope", env=env)
    assert unknown.returncode == 2 and "no backup policy named 'nope'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    with sqlite3.connect(tmp_path / "opsportal.sqlite3") as db:
        db.execute("UPDATE backups_backuppolicy SET lock_token = 'held', lock_expires_at = ? WHERE name = 'default'",
                   [(timezone.now() + timedelta(minutes=5)).replace(tzinfo=None).isoformat(sep=" ")])  # fmt: skip
    busy = manage("backup", "run", env=env)
    assert busy.returncode == 3 and "already running" in busy.stderr, busy.stderr
    with sqlite3.connect(tmp_path / "opsportal.sqlite3") as db:
        db.execute("UPDATE backups_backuppolicy SET lock_token = '', lock_expires_at = NULL")
    done = manage("backup", "run", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == Status.SUCCEEDED
    in_place = manage("backup", "restore", str(json.loads(done.stdout)["id"]), "--in-place", env=env)
    assert in_place.returncode == 2 and "--yes" in in_place.stderr
