"""The SQLite engine: the online backup API copies a consistent database while another thread keeps writing."""

import contextlib
import sqlite3
import threading
from pathlib import Path

import pytest
from django.db import transaction
from django.db.migrations.recorder import MigrationRecorder

from apps.backups.engines import engine_for, engine_of
from apps.backups.errors import BackupError
from tests.backups.databases import extra_alias


@pytest.fixture(autouse=True)
def database_access(django_db_blocker):
    """These tests bring their own database files (aliases added for the test), not the test database."""
    with django_db_blocker.unblock():
        yield


@contextlib.contextmanager
def live_database(path: Path, journal_mode: str):
    """A database file an alias names, with a thread inserting rows (one commit each) until the `with` ends."""
    with contextlib.closing(sqlite3.connect(path)) as setup:
        setup.execute(f"PRAGMA journal_mode={journal_mode}")
        setup.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        setup.commit()
    stop, written = threading.Event(), threading.Event()

    def write() -> None:
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as writer:
            while not stop.is_set():
                writer.execute("INSERT INTO events (body) VALUES (?)", ["x" * 500])
                writer.commit()
                if writer.execute("SELECT COUNT(*) FROM events").fetchone()[0] >= 200:
                    written.set()

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    written.wait(timeout=30)
    with extra_alias("live", {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}):
        yield
    stop.set()
    thread.join()


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_a_backup_taken_while_another_thread_writes_restores_intact(tmp_path, journal_mode):
    engine = engine_of("sqlite")
    dump = tmp_path / "dump.sqlite3"
    with live_database(tmp_path / "live.sqlite3", journal_mode):
        with engine.dump("live") as stream:
            dump.write_bytes(stream.read())
        counts = engine.row_counts("live")
        assert counts["events"] >= 200
        with engine.scratch("live") as target:
            engine.restore(dump, target, clean=True)
            with contextlib.closing(sqlite3.connect(target)) as restored:
                assert restored.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert engine.count_rows(target) == counts
            assert engine.applied_migrations(target) == []
        assert not Path(target).exists()
    with contextlib.closing(sqlite3.connect(tmp_path / "live.sqlite3")) as live:
        assert live.execute("SELECT COUNT(*) FROM events").fetchone()[0] > counts["events"]


def test_a_dump_leaves_no_temporary_copy_behind(tmp_path, settings):
    settings.BACKUP_SCRATCH_DIR = tmp_path
    with extra_alias("other", {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "o.sqlite3")}):
        engine = engine_for("other")
        with engine.dump("other") as stream:
            assert stream.read(16) == b"SQLite format 3\x00"
        assert engine.row_counts("other") == {}
    assert list(tmp_path.iterdir()) == [tmp_path / "o.sqlite3"]  # the dump's temporary copy is gone


def test_a_corrupt_dump_is_refused_before_the_target_is_touched(tmp_path):
    engine = engine_of("sqlite")
    dump, target = tmp_path / "dump.sqlite3", tmp_path / "target.sqlite3"
    dump.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    target.write_bytes(b"")
    with pytest.raises(BackupError, match=r"SQLite restore into .* failed"):
        engine.restore(dump, str(target), clean=True)
    assert target.read_bytes() == b""


def test_only_postgresql_and_sqlite_are_supported():
    with pytest.raises(BackupError, match="cannot back up a mysql database"):
        engine_of("mysql")
    with pytest.raises(BackupError, match="unknown database 'nope'"):
        engine_for("nope")


@pytest.mark.django_db(transaction=True)
def test_the_portal_database_dumps_even_in_memory_with_its_migrations(tmp_path):
    """The alias's own connection copies it: a new connection could not open a test run's in-memory database."""
    engine = engine_for("default")
    if engine.vendor != "sqlite":
        pytest.skip("the portal runs on PostgreSQL here (tests/backups/test_engine_postgres.py)")
    dump = tmp_path / "dump.sqlite3"
    with engine.dump("default") as stream:
        dump.write_bytes(stream.read())
    assert engine.row_counts("default")["django_migrations"] > 0
    recorded = MigrationRecorder.Migration.objects.values_list("app", "name")
    assert engine.applied_migrations(str(dump)) == sorted([app, name] for app, name in recorded)


@pytest.mark.django_db
def test_a_dump_inside_a_transaction_is_refused_instead_of_waiting_forever():
    engine = engine_for("default")
    if engine.vendor != "sqlite":
        pytest.skip("the portal runs on PostgreSQL here")
    with transaction.atomic(), pytest.raises(BackupError, match="inside a transaction"), engine.dump("default"):
        pass


def test_row_counts_describe_a_dump_and_need_one():
    with pytest.raises(BackupError, match=r"row_counts\(\) follows dump\(\)"):
        engine_of("sqlite").row_counts("default")
