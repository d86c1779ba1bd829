"""The manifest is stored twice and pinned by the SHA-256 on the Backup row: any edit is detected."""

import pytest

from apps.backups import manifest
from apps.backups.errors import IntegrityError

CONTENT = {"format": 1, "backup_id": 7, "location": "p/b", "artifacts": [{"name": "files.tar.zst", "size": 3}]}


def test_a_written_manifest_loads_back(storage):
    sha256 = manifest.write(storage, "p/b", CONTENT)
    assert storage.list("p/b/") == ["p/b/manifest.copy.json", "p/b/manifest.json"]
    assert manifest.load(storage, "p/b", sha256=sha256) == CONTENT


def test_the_copy_is_written_last(local_storage, monkeypatch):
    written = []
    real_writer = local_storage.writer
    monkeypatch.setattr(local_storage, "writer", lambda key: written.append(key) or real_writer(key))
    manifest.write(local_storage, "p/b", CONTENT)
    assert written == ["p/b/manifest.json", "p/b/manifest.copy.json"]


def test_a_copy_that_differs_is_detected(storage):
    sha256 = manifest.write(storage, "p/b", CONTENT)
    with storage.writer("p/b/manifest.copy.json") as target:
        target.write(manifest.encode({**CONTENT, "backup_id": 8}))
    with pytest.raises(IntegrityError, match="the manifest and its copy differ"):
        manifest.load(storage, "p/b", sha256=sha256)


@pytest.mark.parametrize("name", [manifest.NAME, manifest.COPY_NAME])
def test_a_missing_copy_is_detected(storage, name):
    sha256 = manifest.write(storage, "p/b", CONTENT)
    storage.delete_prefix(f"p/b/{name}")
    with pytest.raises(IntegrityError, match="missing"):
        manifest.load(storage, "p/b", sha256=sha256)


def test_an_edited_manifest_is_detected_even_when_both_copies_were_edited(storage):
    sha256 = manifest.write(storage, "p/b", CONTENT)
    edited = {**CONTENT, "artifacts": [{"name": "files.tar.zst", "size": 4}]}
    manifest.write(storage, "p/b", edited)  # both copies, consistently
    with pytest.raises(IntegrityError, match="not the one recorded"):
        manifest.load(storage, "p/b", sha256=sha256)
