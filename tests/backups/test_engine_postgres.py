"""The PostgreSQL engine against the real server: streamed dumps of one snapshot, fatal restore errors, scratch DBs."""

import stat
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connection, connections

from apps.backups.engines import engine_for
from apps.backups.errors import BackupError
from tests.backups.databases import extra_alias

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CHUNK = 1 << 20


@pytest.fixture
def sample_table():
    """A committed table (the dump runs in another session), dropped after the test."""

    def fill(rows: int, width: int = 1) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO backup_sample SELECT g, repeat(md5(g::text), %s) FROM generate_series(1, %s) g",
                [width, rows],
            )

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE backup_sample (id bigint PRIMARY KEY, body text)")
    yield fill
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS backup_sample")


def dump_to(path: Path, alias: str = "default"):
    engine = engine_for(alias)
    with engine.dump(alias) as stream, path.open("wb") as file:
        while chunk := stream.read(CHUNK):
            file.write(chunk)
    return engine


def exists(target: str) -> bool:
    """Whether the scratch database a target URL names is on the server (other workers have theirs)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [urlsplit(target).path.strip("/")])
        return cursor.fetchone() is not None


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def test_a_dump_is_streamed_with_flat_memory(sample_table):
    sample_table(100_000, width=10)  # ~33 MB of rows, and of dump (-Z0: uncompressed)
    engine = engine_for("default")
    total, start, peak = 0, rss(), 0
    with engine.dump("default") as stream:
        while chunk := stream.read(CHUNK):
            total += len(chunk)
            peak = max(peak, rss())
    assert total > 30_000_000
    assert peak - start < 16_000_000
    assert engine.row_counts("default")["backup_sample"] == 100_000


def test_a_restored_dump_has_the_counts_of_its_snapshot_despite_writes_during_the_dump(sample_table, tmp_path):
    sample_table(1000)
    engine = engine_for("default")
    path = tmp_path / "db.pgdump"
    with engine.dump("default") as stream:
        with connection.cursor() as cursor:  # committed while the dump runs: in neither the dump nor the counts
            cursor.execute("INSERT INTO backup_sample SELECT g, 'late' FROM generate_series(1001, 1500) g")
        path.write_bytes(stream.read())
    counts = engine.row_counts("default")
    assert counts["backup_sample"] == 1000
    assert "django_migrations" in counts

    with engine.scratch("default") as target:
        engine.restore(path, target, clean=False)
        assert engine.count_rows(target) == counts
        assert engine.applied_migrations(target) == engine.applied_migrations(engine.alias_target("default"))
        assert engine.applied_migrations(target)
    assert not exists(target)


def test_a_failing_restore_is_fatal_says_why_and_leaves_the_target_as_it_was(sample_table, tmp_path):
    sample_table(10)
    path = tmp_path / "db.pgdump"
    engine = dump_to(path)
    with engine.scratch("default") as target:
        engine.restore(path, target, clean=False)
        with connections["default"].cursor() as cursor:
            cursor.execute("DELETE FROM backup_sample WHERE id > 5")
        before = engine.count_rows(target)
        with pytest.raises(BackupError, match=r"pg_restore failed \(exit status 1\): .*already exists"):
            engine.restore(path, target, clean=False)
        assert engine.count_rows(target) == before  # one transaction: nothing half-restored

        engine.restore(path, target, clean=True)
        assert engine.count_rows(target)["backup_sample"] == 10


def test_a_file_that_is_not_a_dump_fails_clearly(tmp_path):
    path = tmp_path / "garbage.pgdump"
    path.write_bytes(b"not a dump" * 100)
    engine = engine_for("default")
    with engine.scratch("default") as target, pytest.raises(BackupError, match=r"pg_restore failed.*valid archive"):
        engine.restore(path, target, clean=False)


def test_the_scratch_database_is_dropped_when_the_drill_fails():
    engine = engine_for("default")
    with pytest.raises(RuntimeError), engine.scratch("default") as target:
        assert exists(target)
        raise RuntimeError("the drill failed")
    assert not exists(target)


def test_credentials_reach_pg_dump_by_environment_never_by_argument(tmp_path, settings):
    spy = tmp_path / "pg_dump"
    spy.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/argv\nenv > {tmp_path}/env\nexec pg_dump "$@"\n')
    spy.chmod(spy.stat().st_mode | stat.S_IXUSR)
    settings.BACKUP_PG_DUMP = str(spy)
    with extra_alias("secretive", {**connections["default"].settings_dict, "PASSWORD": "pw-Not-On-The-Line"}):
        dump_to(tmp_path / "db.pgdump", "secretive")
    assert "pw-Not-On-The-Line" not in (tmp_path / "argv").read_text()
    assert "PGPASSWORD=pw-Not-On-The-Line" in (tmp_path / "env").read_text()
    assert "--snapshot=" in (tmp_path / "argv").read_text()


def test_bad_credentials_give_a_clear_error_without_the_password(tmp_path):
    wrong = {**connections["default"].settings_dict, "USER": "no_such_role", "PASSWORD": "hunter2-Secret"}
    with extra_alias("wrong", wrong), pytest.raises(BackupError) as dump_error:
        dump_to(tmp_path / "db.pgdump", "wrong")
    assert 'role "no_such_role" does not exist' in str(dump_error.value)
    assert "hunter2" not in str(dump_error.value)

    engine = dump_to(tmp_path / "db.pgdump")
    target = "postgres://no_such_role:hunter2-Secret@127.0.0.1:5432/postgres"
    with pytest.raises(BackupError) as restore_error:
        engine.restore(tmp_path / "db.pgdump", target, clean=False)
    assert "no_such_role" in str(restore_error.value)
    assert "hunter2" not in str(restore_error.value)


def test_a_missing_tool_is_named(settings):
    settings.BACKUP_PG_DUMP = "/nonexistent/pg_dump"
    engine = engine_for("default")
    with pytest.raises(BackupError, match="cannot run /nonexistent/pg_dump"), engine.dump("default"):
        pass
    with pytest.raises(BackupError, match="cannot run /nonexistent/pg_dump --version"):
        engine.tool_versions()


def test_tool_versions_name_the_client_tools():
    versions = engine_for("default").tool_versions()
    assert set(versions) == {"pg_dump", "pg_restore"}
    assert all(version.split(".")[0].isdigit() for version in versions.values())


def test_a_target_that_is_not_a_postgres_url_is_refused_without_its_password(tmp_path):
    with pytest.raises(BackupError, match=r"not a PostgreSQL target") as error:
        engine_for("default").restore(tmp_path / "x", "mysql://u:hunter2@host/db", clean=False)
    assert "hunter2" not in str(error.value)
