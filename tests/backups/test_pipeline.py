"""The pipeline: round trips, flat memory, clear errors, and nothing restored from tampered bytes."""

import io
import os

import psutil
import pytest
import zstandard
from django.test import override_settings
from pyrage import x25519

from apps.backups import pipeline
from apps.backups.errors import BackupError, IntegrityError

DATA = os.urandom(300_000) + b"compressible " * 100_000


@pytest.fixture
def identity() -> x25519.Identity:
    return x25519.Identity.generate()


def _pack(storage, key, data=DATA, recipients=()):
    seen = []
    info = pipeline.pack(
        io.BytesIO(data), storage, key, level=3, recipients=[str(r) for r in recipients], progress=seen.append
    )
    return info, seen


def test_an_unencrypted_artifact_round_trips(storage, tmp_path):
    info, seen = _pack(storage, "p/b/files.tar.zst")
    assert (info.name, info.raw_size, seen[-1]) == ("files.tar.zst", len(DATA), len(DATA))
    assert info.size == storage.size("p/b/files.tar.zst") < len(DATA)
    with storage.open(info.key) as stored:
        assert zstandard.ZstdDecompressor().decompressobj().decompress(stored.read()) == DATA  # plain zstd
    pipeline.check(storage, info.key, info.sha256, info.size)
    dest = pipeline.unpack_verified(storage, info.key, info.sha256, info.size, tmp_path / "out")
    assert dest.read_bytes() == DATA
    assert os.listdir(tmp_path) == ["out"] or sorted(os.listdir(tmp_path)) == ["out", "store"]


def test_an_encrypted_artifact_round_trips_with_the_identity_only(storage, tmp_path, identity):
    other = x25519.Identity.generate()
    info, _ = _pack(storage, "p/b/db-default.sqlite3.zst.age", recipients=[identity.to_public(), other.to_public()])
    with storage.open(info.key) as stored:
        assert stored.read(21) == b"age-encryption.org/v1"
    dest = tmp_path / "db.sqlite3"
    pipeline.unpack_verified(storage, info.key, info.sha256, info.size, dest, identity=str(other))
    assert dest.read_bytes() == DATA
    identity_file = tmp_path / "identity.txt"
    identity_file.write_text(f"# created: today\n# public key: {identity.to_public()}\n{identity}\n")
    with override_settings(BACKUP_IDENTITY_FILE=str(identity_file)):
        pipeline.unpack_verified(storage, info.key, info.sha256, info.size, tmp_path / "again")
    assert (tmp_path / "again").read_bytes() == DATA


def test_a_wrong_or_missing_identity_fails_clearly_and_writes_nothing(local_storage, tmp_path, identity):
    info, _ = _pack(local_storage, "p/b/a.zst.age", recipients=[identity.to_public()])
    args = (local_storage, info.key, info.sha256, info.size, tmp_path / "out")
    unset = override_settings(BACKUP_IDENTITY_FILE="")
    with unset, pytest.raises(BackupError, match=r"no age identity configured \(BACKUP_IDENTITY_FILE\)"):
        pipeline.unpack_verified(*args)
    wrong = x25519.Identity.generate()
    with pytest.raises(BackupError, match="wrong key") as caught:
        pipeline.unpack_verified(*args, identity=str(wrong))
    assert str(wrong) not in str(caught.value)
    with pytest.raises(BackupError, match="not valid") as caught:
        pipeline.unpack_verified(*args, identity="AGE-SECRET-KEY-1NOTAKEY")
    assert "NOTAKEY" not in str(caught.value)
    missing = override_settings(BACKUP_IDENTITY_FILE=str(tmp_path / "missing.txt"))
    with missing, pytest.raises(BackupError, match="cannot read"):
        pipeline.unpack_verified(*args)
    assert sorted(os.listdir(tmp_path)) == ["store"]


def test_an_invalid_recipient_is_a_clear_error_and_stores_nothing(local_storage):
    with pytest.raises(BackupError, match="invalid age recipient"):
        pipeline.pack(io.BytesIO(DATA), local_storage, "p/b/a", level=3, recipients=["age1nope"], progress=print)
    assert local_storage.list() == []


@pytest.mark.parametrize("encrypted", [False, True])
def test_tampered_bytes_are_detected_before_anything_is_written(local_storage, tmp_path, identity, encrypted):
    info, _ = _pack(local_storage, "p/b/a.zst", recipients=[identity.to_public()] if encrypted else [])
    path = local_storage.root / "p" / "b" / "a.zst"
    stored = bytearray(path.read_bytes())
    stored[len(stored) // 2] ^= 0x01
    path.write_bytes(bytes(stored))
    with pytest.raises(IntegrityError, match="SHA-256 does not match"):
        pipeline.check(local_storage, info.key, info.sha256, info.size)
    dest = tmp_path / "restore" / "out"
    dest.parent.mkdir()
    with pytest.raises(IntegrityError):
        pipeline.unpack_verified(local_storage, info.key, info.sha256, info.size, dest, identity=str(identity))
    assert list(dest.parent.iterdir()) == []
    path.write_bytes(bytes(stored[:-10]))
    with pytest.raises(IntegrityError, match="size is"):
        pipeline.check(local_storage, info.key, info.sha256, info.size)


def test_an_error_of_the_source_is_raised_as_itself_and_leaves_no_object(local_storage, identity):
    class Failing(io.RawIOBase):
        def read(self, n=-1):
            raise BackupError("pg_dump exited with status 1: connection refused")

    for recipients in ([], [str(identity.to_public())]):
        with pytest.raises(BackupError, match="pg_dump exited"):
            pipeline.pack(Failing(), local_storage, "p/b/a", level=3, recipients=recipients, progress=print)
    assert local_storage.list() == [] and local_storage.cleanup_partial() == 0


class Generated(io.RawIOBase):
    """size bytes made on the fly, never in memory as a whole; repeats lie beyond zstd's window: barely compressible."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = os.urandom(4 << 20)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = min(self.left, len(self.block) if n < 0 else min(n, len(self.block)))
        self.left -= n
        return self.block[:n]


def test_memory_stays_flat_for_a_large_stream(local_storage, tmp_path, identity):
    process = psutil.Process()
    before = process.memory_info().rss
    peak = [before]

    def progress(done: int) -> None:
        if done % (16 << 20) < (1 << 20):
            peak.append(process.memory_info().rss)

    size = 200 << 20
    recipients = [str(identity.to_public())]
    key = "p/b/big.zst.age"
    info = pipeline.pack(Generated(size), local_storage, key, level=3, recipients=recipients, progress=progress)
    assert info.raw_size == size
    assert max(peak) - before < 50 << 20, f"RSS grew by {(max(peak) - before) >> 20} MiB"
    dest = tmp_path / "big"
    pipeline.unpack_verified(local_storage, info.key, info.sha256, info.size, dest, identity=str(identity))
    assert dest.stat().st_size == size
    assert process.memory_info().rss - before < 50 << 20
