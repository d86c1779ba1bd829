"""Backups under faults and bad input, on real PostgreSQL, real files, real processes (issue 8).

- kill -9 of `manage.py backup run` at random points (tests/faults/backup_kills.py; CI runs
  KILL_POINTS of them, `python -m bench.backup_faults` the full 20): no artifact under a final
  name without a complete manifest (a run stages its files and publishes the folder whole), the
  leftovers (temp and staged files) cleaned by the next run, the record failed, an alert fired;
- the disk fills up (a 5 MB tmpfs as the storage): a clear error, no partial file, the older
  backup byte-identical, retention not run;
- 100 single-byte flips at random positions across the artifacts: each detected by verify and by
  restore, before restore writes anything to its target; edited or missing manifests; a wrong or
  missing age identity;
- a hostile files archive (../, absolute names, links, devices) extracts nothing outside its root,
  alone and swapped into a backup with a consistent manifest (restore refuses it);
- SQLite with writes going on during the backup: the restored copy passes PRAGMA integrity_check.

Backups here are small (a few MB of bench/backup_seed.py's shop tables) so the suite stays fast.
"""

import contextlib
import hashlib
import io
import os
import random
import sqlite3
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pyrage
import pytest
from django.db import connection

from bench.backup_seed import TABLES, seed_database, seed_files
from tests.faults import backup_kills
from tests.faults.harness import hard_timeout, portal
from tests.services import ROOT, broker_in_memory, manage, subprocess_env

KILL_POINTS = 8  # full: 20 (bench/backup_faults.py)
FLIPS = 100
# A Redis database per pytest-xdist worker, as tests/faults/test_alert_delivery.py (whose portals use the same).
REDIS_DB = 14 + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")) % 2


# ---------------------------------------------------------------- set-up shared by the in-process tests


@pytest.fixture(scope="module", autouse=True)
def tasks_in_memory() -> Iterator[None]:
    """Alert notifications queued by failed backups go to an in-memory broker, not a developer's var/broker."""
    with broker_in_memory():
        yield


def database_url() -> str:
    """The URL of the database this test runs on (pytest-django's test database)."""
    db = connection.settings_dict
    auth = quote(db["USER"] or "postgres") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgresql://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextlib.contextmanager
def empty_database() -> Iterator[str]:
    """A new empty PostgreSQL database next to the test database, dropped afterwards: a restore target."""
    name = f"opsportal_faults_target_{uuid.uuid4().hex[:8]}"
    admin = urlunsplit(urlsplit(database_url())._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def tables_in(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]


@pytest.fixture
def shop() -> Iterator[None]:
    """A few MB of shop tables in the test database (dropped afterwards: the flush only empties Django's)."""
    seed_database(database_url(), 2)
    yield
    with psycopg.connect(database_url()) as conn:
        conn.execute("DROP TABLE IF EXISTS " + ", ".join(reversed(TABLES)) + ", shop_seed")


@pytest.fixture
def stores(settings, tmp_path) -> Path:
    """Backups, scratch files and media in this test's folder; the backups' folder is returned."""
    backups = tmp_path / "backups"
    settings.BACKUP_DIR = backups
    settings.BACKUP_STORAGES = {"local": {"kind": "local", "path": backups}}
    settings.BACKUP_SCRATCH_DIR = tmp_path / "scratch"
    settings.MEDIA_ROOT = tmp_path / "media"
    seed_files(settings.MEDIA_ROOT, 0.3)
    return backups


@pytest.fixture
def identity(settings, tmp_path) -> pyrage.x25519.Identity:
    """An age identity, configured as BACKUP_IDENTITY_FILE."""
    key = pyrage.x25519.Identity.generate()
    path = tmp_path / "identity.txt"
    path.write_text(f"{key}\n")
    settings.BACKUP_IDENTITY_FILE = str(path)
    return key


def make_policy(name: str = "faults", **values):
    from apps.backups.models import BackupPolicy

    defaults = {"databases": ["default"], "include_media": True, "recipients": "", "verify_after": True}
    return BackupPolicy.objects.create(name=name, **{**defaults, **values})


def run_backup(policy):
    """services.backup_run; the Backup recorded, whether it raised or returned."""
    from apps.backups import services
    from apps.backups.errors import BackupError
    from apps.backups.models import Backup

    with contextlib.suppress(BackupError):
        services.backup_run(policy)
    return Backup.objects.filter(policy=policy).latest("started_at")


def tree(folder: Path) -> dict[str, str]:
    """Every file under folder (relative name) with the sha256 of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def artifacts(backups: Path, backup) -> list[Path]:
    return [backups / backup.location / artifact["name"] for artifact in backup.manifest["artifacts"]]


# ---------------------------------------------------------------- kill -9


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.xdist_group("backup_faults")
def test_kill_9_at_random_points_leaves_no_orphan_artifact_and_the_next_run_cleans_up(tmp_path):
    media = tmp_path / "media"
    seed_files(media, 12)
    with (
        hard_timeout(600, "the kill -9 runs"),
        portal(
            os.environ["DATABASE_URL"],
            os.environ["REDIS_URL"],
            REDIS_DB,
            tmp_path,
            BACKUP_DIR=str(tmp_path / "backups"),
            MEDIA_ROOT=str(media),
        ) as site,
    ):
        # A run of ~1.3 s, a third of it the files: kills land between the artifacts too.
        seed_database(site.database_url, 5)
        result = backup_kills.kill_runs(site, points=KILL_POINTS, seed=8)

    found = backup_kills.violations(result)
    assert not found, "\n".join(found)
    interrupted = [kill for kill in result["kills"] if kill["record"]["status"] == "running"]
    assert interrupted, f"no kill landed inside a run: {[k['after_seconds'] for k in result['kills']]}"


# ---------------------------------------------------------------- disk full


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_disk_full_fails_clearly_keeps_older_backups_and_does_not_prune(settings, tmp_path, shop, stores):
    from apps.alerts.models import Alert
    from apps.backups.models import Status

    with tmpfs(tmp_path / "small-disk", "5m") as disk:
        settings.BACKUP_STORAGES = {"local": {"kind": "local", "path": disk}}
        policy = make_policy(include_media=False, keep_last=2, keep_daily=0, keep_weekly=0, keep_monthly=0)
        older = [run_backup(policy), run_backup(policy)]
        assert [backup.status for backup in older] == [Status.SUCCEEDED] * 2, [backup.error for backup in older]
        before = tree(disk)

        big = tmp_path / "incompressible"
        big.mkdir()
        (big / "blob.bin").write_bytes(random.Random(8).randbytes(8 * 2**20))  # more than the disk holds
        policy.paths = [str(big)]
        policy.keep_last = 1  # had retention run after this backup, it would prune the oldest one
        policy.save()
        failed = run_backup(policy)

        assert failed.status == Status.FAILED
        assert "no space left on device" in failed.error.lower(), failed.error
        assert "Traceback" not in failed.error
        assert tree(disk) == before  # nothing of the failed run left (no partial file), the older backup intact
        for backup in older:
            backup.refresh_from_db()
            assert backup.pruned_at is None  # retention (keep_last=1) did not run after the failure
        alert = Alert.objects.get(source="backups", key=policy.name)
        assert alert.state == "firing"


# ---------------------------------------------------------------- corruption


@pytest.fixture
def encrypted_backup(db, shop, stores, identity):
    from apps.backups.models import Status, Verification

    policy = make_policy(recipients=str(identity.to_public()))
    backup = run_backup(policy)
    assert backup.status == Status.SUCCEEDED and backup.verification == Verification.OK, backup.error
    return backup


def restore_into(backup, target: str, **options):
    from apps.backups import restore

    return restore.restore(backup, target=target, in_place=False, force=False, actor=None, **options)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_single_byte_flips_are_all_detected_by_verify_and_by_restore_before_writing(
    settings, tmp_path, stores, encrypted_backup
):
    from apps.backups import services
    from apps.backups.errors import IntegrityError

    backup = encrypted_backup
    paths = artifacts(stores, backup)
    sizes = [path.stat().st_size for path in paths]
    rng = random.Random(8)
    missed_by_verify, missed_by_restore, written = [], [], []
    files_root = tmp_path / "files-target"
    files_root.mkdir()
    with empty_database() as target:
        for flip in range(FLIPS):
            position = rng.randrange(sum(sizes))
            index = 0
            while position >= sizes[index]:
                position -= sizes[index]
                index += 1
            path = paths[index]
            with path.open("r+b") as stream:
                stream.seek(position)
                original = stream.read(1)
                stream.seek(position)
                stream.write(bytes([original[0] ^ rng.randrange(1, 256)]))
            try:
                if services.verify(backup).ok:
                    missed_by_verify.append((flip, path.name, position))
                try:
                    restore_into(backup, target, files_root=files_root)
                    missed_by_restore.append((flip, path.name, position))
                except IntegrityError:
                    pass
                scratch = Path(settings.BACKUP_SCRATCH_DIR)
                if tables_in(target) or tree(files_root) or (scratch.exists() and tree(scratch)):
                    written.append((flip, path.name, position))
            finally:
                with path.open("r+b") as stream:
                    stream.seek(position)
                    stream.write(original)

        assert (missed_by_verify, missed_by_restore, written) == ([], [], [])
        # The same backup, whole again, verifies and restores: the failures above were the flips.
        assert services.verify(backup).ok
        restore_into(backup, target, files_root=files_root)
        assert set(TABLES) <= set(tables_in(target))
        assert len(tree(files_root)) == len(tree(settings.MEDIA_ROOT))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_edited_or_missing_manifest_is_detected(stores, encrypted_backup):
    from apps.backups import services
    from apps.backups.errors import IntegrityError

    backup = encrypted_backup
    folder = stores / backup.location
    first, copy = folder / "manifest.json", folder / "manifest.copy.json"
    original = first.read_bytes()
    edited = original.replace(b'"shop_orders":', b'"shop_orders":1', 1)  # a row count, still valid JSON
    assert edited != original

    with empty_database() as target:
        for files in ([first], [first, copy]):  # one copy edited; both edited alike (the row's sha256 differs)
            for path in files:
                path.write_bytes(edited)
            assert not services.verify(backup).ok
            with pytest.raises(IntegrityError):
                restore_into(backup, target)
            assert tables_in(target) == []
            for path in files:
                path.write_bytes(original)
        copy.unlink()
        assert not services.verify(backup).ok
        with pytest.raises(IntegrityError):
            restore_into(backup, target)
        assert tables_in(target) == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_missing_or_wrong_age_identity_fails_clearly_and_writes_nothing(settings, tmp_path, encrypted_backup):
    from apps.backups.errors import BackupError

    backup = encrypted_backup
    wrong = tmp_path / "wrong-identity.txt"
    wrong.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    with empty_database() as target:
        settings.BACKUP_IDENTITY_FILE = ""
        with pytest.raises(BackupError, match="identity"):
            restore_into(backup, target)
        assert tables_in(target) == []

        settings.BACKUP_IDENTITY_FILE = str(wrong)
        with pytest.raises(BackupError, match=r"(?i)identity|decrypt|key"):
            restore_into(backup, target)
        assert tables_in(target) == []

        # The command, as an operator runs it: exit 1 and one clear line, not a traceback.
        env = subprocess_env(
            DATABASE_URL=database_url(),
            REDIS_URL=os.environ.get("REDIS_URL", ""),
            SECRET_KEY="f" * 60,
            BACKUP_DIR=str(settings.BACKUP_DIR),
            BACKUP_SCRATCH_DIR=str(settings.BACKUP_SCRATCH_DIR),
        )
        for identity_args in ([], ["--identity", str(wrong)]):
            result = manage(
                "backup", "restore", str(backup.pk), "--target", target, "--yes", *identity_args, env=env, timeout=120
            )
            assert result.returncode == 1, (identity_args, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr and "identit" in result.stderr.lower(), result.stderr
            assert tables_in(target) == []


# ---------------------------------------------------------------- hostile archives


def hostile_archive(path: Path, outside: Path, kind: str) -> str:
    """A tar with a harmless file then hostile members of `kind`; the first hostile member's name."""
    with tarfile.open(path, "w") as archive:

        def add(info: tarfile.TarInfo, data: bytes = b"") -> None:
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data else None)

        add(tarfile.TarInfo("harmless/readme.txt"), b"fine\n")
        if kind == "dotdot":
            name = "harmless/../../escaped.txt"
            add(tarfile.TarInfo(name), b"escaped\n")
        elif kind == "absolute":
            name = str(outside / "absolute.txt")
            add(tarfile.TarInfo(name), b"absolute\n")
        elif kind == "symlink":
            link = tarfile.TarInfo("harmless/link")
            link.type, link.linkname = tarfile.SYMTYPE, str(outside)
            add(link)
            add(tarfile.TarInfo("harmless/link/through-symlink.txt"), b"through\n")
            name = link.name
        elif kind == "hardlink":
            name = "harmless/hard"
            hard = tarfile.TarInfo(name)
            hard.type, hard.linkname = tarfile.LNKTYPE, str(outside / "victim.txt")
            add(hard)
        elif kind == "device":
            name = "harmless/null"
            device = tarfile.TarInfo(name)
            device.type, device.devmajor, device.devminor = tarfile.CHRTYPE, 1, 3
            add(device)
        return name


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "device"])
def test_a_hostile_files_archive_restores_nothing_outside_its_root(tmp_path, kind):
    from apps.backups.engines import files
    from apps.backups.errors import BackupError

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("untouched\n")
    root = tmp_path / "root" / "restore"
    root.mkdir(parents=True)
    archive = tmp_path / "hostile.tar"
    name = hostile_archive(archive, outside, kind)
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}

    with pytest.raises(BackupError) as raised:
        files.extract(archive, root=root)

    assert name.split("/")[-1] in str(raised.value) or name in str(raised.value), str(raised.value)
    after = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    outside_root = {path: data for path, data in after.items() if root not in path.parents}
    assert outside_root == before  # nothing new, nothing changed outside the root
    assert not any(path.is_symlink() for path in root.rglob("*"))
    assert (outside / "victim.txt").read_text() == "untouched\n"
    assert not (tmp_path / "root" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_a_backup_whose_files_archive_was_swapped_for_a_hostile_one_restores_nothing_outside_its_root(
    tmp_path, stores, kind
):
    """The attacker who can write the storage and the database: a hostile archive with a consistent manifest."""
    from apps.backups import manifest, pipeline
    from apps.backups.errors import BackupError
    from apps.backups.models import Status
    from apps.backups.storage import get_storage

    backup = run_backup(make_policy())
    assert backup.status == Status.SUCCEEDED, backup.error
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("untouched\n")
    hostile_archive(tmp_path / "hostile.tar", outside, kind)
    storage = get_storage(backup.storage)
    data = backup.manifest
    [artifact] = [artifact for artifact in data["artifacts"] if artifact["kind"] == "files"]
    with (tmp_path / "hostile.tar").open("rb") as source:
        packed = pipeline.pack(
            source, storage, f"{backup.location}/{artifact['name']}", level=3, recipients=[], progress=lambda n: None
        )
    artifact.update(size=packed.size, sha256=packed.sha256, raw_size=packed.raw_size)
    backup.manifest, backup.manifest_sha256 = data, manifest.write(storage, backup.location, data)
    backup.save(update_fields=["manifest", "manifest_sha256"])
    root = tmp_path / "files-target"
    root.mkdir()
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file() and root not in path.parents}

    with empty_database() as target, pytest.raises(BackupError, match="refusing archive member"):
        restore_into(backup, target, files_root=root)

    after = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file() and root not in path.parents}
    scratch = {path for path in after if Path(stores.parent / "scratch") in path.parents}
    assert {path: data for path, data in after.items() if path not in scratch} == before
    assert not scratch  # the decrypted, decompressed copies are gone too
    assert not any(path.is_symlink() for path in root.rglob("*"))


# ---------------------------------------------------------------- SQLite while writes go on

WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("CREATE TABLE IF NOT EXISTS churn (id INTEGER PRIMARY KEY, body TEXT NOT NULL, at REAL NOT NULL)")
conn.execute("CREATE INDEX IF NOT EXISTS churn_at ON churn (at)")
stop = time.monotonic() + float(sys.argv[2])
written = 0
while time.monotonic() < stop:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO churn (body, at) VALUES (?, ?)", [("x" * 200, time.time())] * 50)
    conn.execute("DELETE FROM churn WHERE id % 7 = 0 AND id > (SELECT max(id) - 400 FROM churn)")
    conn.execute("COMMIT")
    written += 50
print(written)
"""


@pytest.mark.slow
def test_sqlite_backup_while_writes_continue_restores_a_copy_that_passes_integrity_check(tmp_path):
    var = tmp_path / "var"
    env = subprocess_env(OPSPORTAL_VAR_DIR=str(var), BACKUP_DIR=str(tmp_path / "backups"), LOG_LEVEL="WARNING")
    env["PYTHONPATH"] = str(ROOT)
    assert manage("migrate", "-v0", env=env, timeout=300).returncode == 0
    database = var / "opsportal.sqlite3"
    with sqlite3.connect(database) as conn:  # some bulk, so the backup takes a while
        conn.execute("CREATE TABLE bulk (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO bulk (body) VALUES (?)", [(os.urandom(300).hex(),) for _ in range(40_000)])
    conn.close()

    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(database), "20"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # the writer is writing
        started = time.monotonic()
        run = manage("backup", "run", "--policy", "default", "--json", env=env, timeout=300)
        took = time.monotonic() - started
        assert writer.poll() is None, "the writer stopped before the backup ended: the test proves nothing"
    finally:
        writer.terminate()
        writer.wait(30)
    assert run.returncode == 0, run.stderr
    with sqlite3.connect(database) as conn:
        [(backup_id,)] = conn.execute("SELECT max(id) FROM backups_backup WHERE status = 'succeeded'").fetchall()
    conn.close()

    restored = tmp_path / "restored.sqlite3"
    result = manage("backup", "restore", str(backup_id), "--target", str(restored), "--yes", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    with contextlib.closing(sqlite3.connect(restored)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT count(*) FROM bulk").fetchone()[0] == 40_000
        assert conn.execute("SELECT count(*) FROM churn").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM backups_backuppolicy").fetchone()[0] >= 1
    assert took < 300
