"""Storages write atomically: an object appears under its key complete, or not at all."""

import os
from pathlib import Path

import pytest
from django.test import override_settings

from apps.backups import manifest
from apps.backups import s3 as s3_module
from apps.backups import storage as storage_module
from apps.backups.errors import BackupError, IntegrityError
from apps.backups.s3 import S3Storage
from apps.backups.storage import LocalStorage, get_storage


class WriteFailedError(Exception):
    pass


def test_storage_round_trip_lists_sizes_and_deletes_by_prefix(storage):
    for key in ("p/b1/a", "p/b1/b", "p/b10/a", "q/x"):
        with storage.writer(key) as target:
            target.write(key.encode() * 3)
    assert storage.list("p/b1/") == ["p/b1/a", "p/b1/b"]
    assert storage.list() == ["p/b1/a", "p/b1/b", "p/b10/a", "q/x"]
    assert storage.size("p/b1/a") == 18 and storage.exists("q/x")
    with storage.open("p/b1/b") as stored:
        assert stored.read() == b"p/b1/b" * 3
    assert storage.delete_prefix("p/b1/") == 2
    assert storage.list() == ["p/b10/a", "q/x"]
    assert not storage.exists("p/b1/a")


def test_a_missing_object_is_an_integrity_error(storage):
    with pytest.raises(IntegrityError, match="missing"):
        storage.open("p/none")
    with pytest.raises(IntegrityError, match="missing"):
        storage.size("p/none")


@pytest.mark.parametrize("key", ["", "/etc/passwd", "a/../../etc", "a//b", "./a"])
def test_keys_that_could_leave_the_root_are_refused(local_storage, key):
    with pytest.raises(BackupError, match="invalid storage key"):
        local_storage.exists(key)


def test_local_writer_leaves_nothing_under_the_final_name_when_the_write_fails(local_storage):
    with pytest.raises(WriteFailedError), local_storage.writer("p/b/artifact") as target:
        target.write(b"half of it")
        folder = local_storage.root / "p" / "b"
        assert next(p.name for p in folder.iterdir()).startswith(".artifact.part-")  # written under a temp name
        raise WriteFailedError
    assert list((local_storage.root / "p" / "b").iterdir()) == []
    assert not local_storage.exists("p/b/artifact")


def test_local_writer_fsyncs_the_file_and_the_folder_around_the_rename(local_storage, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", "dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file"))
        real_fsync(fd)

    def replace(source, target):
        events.append(("replace", Path(source).name.startswith(".artifact.part-"), Path(target).name))
        real_replace(source, target)

    monkeypatch.setattr(storage_module.os, "fsync", fsync)
    monkeypatch.setattr(storage_module.os, "replace", replace)
    with local_storage.writer("p/b/artifact") as target:
        target.write(b"data")
    assert events == [("fsync", "file"), ("replace", True, "artifact"), ("fsync", "dir")]


def test_local_cleanup_removes_only_what_killed_runs_left(local_storage):
    with local_storage.writer("p/b/done") as target:
        target.write(b"complete")
    leftover = local_storage.root / "p" / "c" / ".db.zst.part-0a1b2c3d"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"partial")  # what a kill -9 mid-write leaves
    other = local_storage.root / "q" / ".x.part-00000000"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"another policy's run in progress")
    assert local_storage.list("p/") == ["p/b/done"]
    assert local_storage.cleanup_partial("p/") == 1
    assert not leftover.exists() and other.exists()
    assert local_storage.exists("p/b/done")


def test_local_delete_prefix_removes_partial_files_and_empty_folders(local_storage):
    with local_storage.writer("p/b/a") as target:
        target.write(b"a")
    (local_storage.root / "p" / "b" / ".c.part-1").write_bytes(b"c")
    assert local_storage.delete_prefix("p/b/") == 2
    assert not (local_storage.root / "p").exists() and local_storage.root.exists()


def test_a_local_delete_cut_short_leaves_nothing_under_the_final_name(local_storage, monkeypatch):
    for name in ("db.zst", "manifest.json"):
        with local_storage.writer(f"p/b/{name}") as target:
            target.write(b"x")
    unlink = Path.unlink

    def crash_after_the_first(path, *args, **kwargs):
        unlink(path, *args, **kwargs)
        raise KeyboardInterrupt  # a kill between two files

    monkeypatch.setattr(Path, "unlink", crash_after_the_first)
    with pytest.raises(KeyboardInterrupt):
        local_storage.delete_prefix("p/b/")
    monkeypatch.setattr(Path, "unlink", unlink)

    assert not (local_storage.root / "p" / "b").exists()
    assert local_storage.list("p/") == []
    assert local_storage.cleanup_partial("p/") == 1
    assert not (local_storage.root / "p").exists()


STAGED = ["manifest.copy.json", "db.zst", "manifest.json", "files.tar.zst"]


def test_publish_moves_a_staged_backup_to_its_final_prefix_and_empties_the_staging(storage):
    for key in ["p/b0/db.zst"] + [f"p/.staging/b1/{name}" for name in STAGED]:
        with storage.writer(key) as target:
            target.write(key.encode())

    storage.publish("p/.staging/b1/", "p/b1/", last=manifest.NAMES)

    assert storage.list("p/") == ["p/b0/db.zst", *sorted(f"p/b1/{name}" for name in STAGED)]
    with storage.open("p/b1/manifest.json") as stored:
        assert stored.read() == b"p/.staging/b1/manifest.json"
    assert storage.delete_prefix("p/.staging/") == 0


def test_local_publish_is_one_rename_of_the_folder_synced_in_both_parents(local_storage, monkeypatch):
    for name in STAGED:
        with local_storage.writer(f"p/.staging/b1/{name}") as target:
            target.write(b"x")
    events = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rename(source, target):
        events.append(("rename", str(source), str(target)))
        real_rename(source, target)

    monkeypatch.setattr(storage_module.os, "fsync", fsync)
    monkeypatch.setattr(storage_module.os, "rename", rename)
    local_storage.publish("p/.staging/b1/", "p/b1/")

    root = local_storage.root
    assert events == [
        ("rename", str(root / "p" / ".staging" / "b1"), str(root / "p" / "b1")),
        ("fsync", str(root / "p")),
        ("fsync", str(root / "p" / ".staging")),
    ]
    assert sorted(path.name for path in (root / "p").iterdir()) == ["b1"]  # .staging went, once empty


def test_s3_publish_copies_the_manifests_last(s3_storage, monkeypatch):
    for name in STAGED:
        with s3_storage.writer(f"p/.staging/b1/{name}") as target:
            target.write(b"x")
    copied = []
    real_copy = s3_storage.client.copy

    def copy(source, bucket, key):
        copied.append(key)
        real_copy(source, bucket, key)

    monkeypatch.setattr(s3_storage.client, "copy", copy)
    s3_storage.publish("p/.staging/b1/", "p/b1/", last=manifest.NAMES)

    names = ["db.zst", "files.tar.zst", "manifest.json", "manifest.copy.json"]
    assert copied == [f"opsportal/p/b1/{name}" for name in names]
    assert s3_storage.list("p/.staging/") == [] and _uploads(s3_storage) == []


def test_s3_writer_uploads_a_large_object_in_parts(s3_storage, monkeypatch):
    monkeypatch.setattr(s3_module, "S3_PART_SIZE", 5 << 20)  # S3's minimum part size
    data = os.urandom(11 << 20)
    with s3_storage.writer("p/b/big") as target:
        for start in range(0, len(data), 1 << 20):
            target.write(data[start : start + (1 << 20)])
        assert not s3_storage.exists("p/b/big")  # parts uploaded, the object not there yet
        assert len(_uploads(s3_storage)) == 1
    with s3_storage.open("p/b/big") as stored:
        assert stored.read() == data
    head = s3_storage.client.head_object(Bucket=s3_storage.bucket, Key="opsportal/p/b/big")
    assert head["ETag"].strip('"').endswith("-3")  # a multipart object of three parts
    assert _uploads(s3_storage) == []


def test_s3_writer_aborts_the_upload_when_the_write_fails(s3_storage, monkeypatch):
    monkeypatch.setattr(s3_module, "S3_PART_SIZE", 5 << 20)
    with pytest.raises(WriteFailedError), s3_storage.writer("p/b/big") as target:
        target.write(b"x" * (6 << 20))  # one part uploaded
        assert len(_uploads(s3_storage)) == 1
        raise WriteFailedError
    assert not s3_storage.exists("p/b/big")
    assert _uploads(s3_storage) == []


def test_s3_cleanup_aborts_uploads_that_a_killed_run_left(s3_storage):
    client, bucket = s3_storage.client, s3_storage.bucket
    client.create_multipart_upload(Bucket=bucket, Key="opsportal/p/b/killed")
    client.create_multipart_upload(Bucket=bucket, Key="opsportal/q/b/running")
    assert s3_storage.cleanup_partial("p/") == 1
    assert [upload["Key"] for upload in _uploads(s3_storage)] == ["opsportal/q/b/running"]


def test_s3_errors_are_backup_errors_without_the_secret(s3_server):
    storage = S3Storage(bucket="no-such-bucket", endpoint_url=s3_server, access_key="k", secret_key="s3cr3t-value")
    with pytest.raises(BackupError) as caught:
        storage.list("p/")
    assert "s3cr3t-value" not in str(caught.value) and "s3cr3t-value" not in repr(storage)


def test_get_storage_builds_the_configured_storages(tmp_path, s3_server, s3_bucket):
    storages = {
        "local": {"kind": "local", "path": tmp_path},
        "s3": {
            "kind": "s3",
            "bucket": s3_bucket,
            "prefix": "",
            "endpoint_url": s3_server,
            "region": "us-east-1",
            "access_key": "a",
            "secret_key": "b",
        },
        "odd": {"kind": "ftp"},
    }
    with override_settings(BACKUP_STORAGES=storages):
        assert isinstance(get_storage("local"), LocalStorage)
        assert get_storage("s3").list() == []
        with pytest.raises(BackupError, match="unknown kind 'ftp'"):
            get_storage("odd")
        with pytest.raises(BackupError, match=r"unknown backup storage 'nas' \(BACKUP_STORAGES has: local, odd, s3\)"):
            get_storage("nas")


def _uploads(storage: S3Storage) -> list[dict]:
    return storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", [])
