"""`manage.py backup` through call_command, and as a real process for its exit status (what cron sees)."""

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pyrage
import pytest
from django.core.management import CommandError, call_command

from apps.audit.models import AuditEvent
from apps.backups.engines import engine_for
from apps.backups.lease import Lease
from apps.backups.models import Backup, BackupPolicy, Status, Trigger, Verification
from tests.services import manage, subprocess_env

# Transactional: backup_run refuses to run inside a transaction (its record is committed before any byte is
# written), and most tests here make a backup. The default policy survives the flush (a post_migrate receiver).
pytestmark = pytest.mark.django_db(transaction=True)


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


@pytest.fixture
def target() -> Iterator[str]:
    """An empty database to restore into: a scratch PostgreSQL database, or an SQLite file."""
    with engine_for("default").scratch("default") as scratch:
        yield scratch


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
    # Both kept while they are made (each good run applies the retention), then a rule that keeps one.
    policies = BackupPolicy.objects.filter(pk=small_policy.pk)
    policies.update(keep_last=2, keep_daily=0, keep_weekly=0, keep_monthly=0)
    older, newer = backup_now(), backup_now()
    policies.update(keep_last=1)

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


def test_restore_into_another_database(target):
    backup = backup_now()

    code, out, err = run("restore", str(backup.pk), "--target", target, "--json")

    assert code == 0, err
    assert json.loads(out)["databases"] == ["default"]
    assert engine_for("default").count_rows(target)["backups_backuppolicy"] >= 1
    assert AuditEvent.objects.filter(action="backup.restore").exists()


def test_prune_exits_1_when_a_deletion_failed(small_policy, monkeypatch):
    BackupPolicy.objects.filter(pk=small_policy.pk).update(keep_last=2, keep_daily=0, keep_weekly=0, keep_monthly=0)
    older, _ = backup_now(), backup_now()
    BackupPolicy.objects.filter(pk=small_policy.pk).update(keep_last=1)

    def unreachable_storage(backup, *, actor):
        raise OSError("the storage did not answer")

    monkeypatch.setattr("apps.backups.services.delete", unreachable_storage)
    code, out, _ = run("prune")

    assert code == 1 and "1 failed" in out and f"#{older.pk}: the storage did not answer" in out


def test_run_exits_1_when_the_backup_failed(small_policy, tmp_path):
    BackupPolicy.objects.filter(pk=small_policy.pk).update(paths=[str(tmp_path / "gone")])

    code, out, _ = run("run")

    assert code == 1 and "failed" in out and "do not exist" in out
    assert Backup.objects.get().status == Status.FAILED


def test_restore_in_place_says_where_the_pre_restore_backup_is(settings):
    backup = backup_now()

    code, out, err = run("restore", str(backup.pk), "--in-place", "--yes")

    assert code == 0, err
    location = out.split("pre-restore backup at ")[1].split(" ")[0]
    assert location != backup.location and (Path(settings.BACKUP_DIR) / location / "manifest.json").exists()


def test_restore_reads_the_identity_from_the_file_given(small_policy, tmp_path, target):
    identity = pyrage.x25519.Identity.generate()
    BackupPolicy.objects.filter(pk=small_policy.pk).update(recipients=str(identity.to_public()))
    backup = backup_now()
    key = tmp_path / "key.txt"
    key.write_text(f"# created by manage.py backup keygen\n{identity}\n")

    code, _, err = run("restore", str(backup.pk), "--target", target, "--identity", str(key))

    assert backup.encrypted and code == 0, err
    assert engine_for("default").count_rows(target)["backups_backuppolicy"] >= 1


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
    # Through the ORM in the process's own database (its audit triggers need Django's connection): another run
    # holds the default policy's lock, and a policy names a folder that does not exist.
    gone = str(tmp_path / "gone")
    shell(env, "from apps.backups.lease import Lease; from apps.backups.models import BackupPolicy as P; "
               "Lease.acquire(P.objects.get(name='default')); "
               f"P.objects.create(name='broken', databases=[], include_media=False, paths=[{gone!r}])")  # fmt: skip
    busy = manage("backup", "run", env=env)
    assert busy.returncode == 3 and "already running" in busy.stderr, busy.stderr
    failed = manage("backup", "run", "--policy", "broken", env=env)
    assert failed.returncode == 1 and "do not exist" in failed.stdout, (failed.stdout, failed.stderr)
    shell(env, "from apps.backups.models import BackupPolicy; "
               "BackupPolicy.objects.update(lock_token='', lock_expires_at=None)")  # fmt: skip
    done = manage("backup", "run", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == Status.SUCCEEDED
    in_place = manage("backup", "restore", str(json.loads(done.stdout)["id"]), "--in-place", env=env)
    assert in_place.returncode == 2 and "--yes" in in_place.stderr


def shell(env: dict, code: str) -> None:
    result = manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
