"""Files archive and extract: checksums round trip; hostile archives write nothing, anywhere; limits hold."""

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from apps.backups.engines import files
from apps.backups.errors import BackupError


def tree(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def archive_to(path: Path, sources: list[Path]) -> dict:
    with files.archive(sources) as stream, path.open("wb") as file:
        while chunk := stream.read(1 << 16):
            file.write(chunk)
    return stream.summary


@pytest.fixture
def media(tmp_path) -> Path:
    root = tmp_path / "media"
    (root / "avatars" / "empty").mkdir(parents=True)
    (root / "avatars" / "alice.png").write_bytes(os.urandom(300_000))
    (root / "report.csv").write_text("a,b\n1,2\n")
    (root / "report.csv").chmod(0o640)
    os.symlink(root / "report.csv", root / "link.csv")  # skipped: a restore would refuse it
    return root


def test_files_round_trip_with_their_checksums(media, tmp_path):
    single = tmp_path / "notes.txt"
    single.write_text("notes")
    summary = archive_to(tmp_path / "files.tar", [media, single])

    expected = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in [*media.rglob("*"), single] if p.is_file()}
    expected.pop(str(media / "link.csv"))
    assert {e["path"]: e["sha256"] for e in summary["entries"]} == expected
    assert summary["count"] == 3
    assert summary["bytes"] == 300_000 + 8 + 5

    restored = tmp_path / "restored"
    assert files.extract(tmp_path / "files.tar", root=restored) == summary
    back = restored / str(media).lstrip("/")
    assert tree(back) == {k: v for k, v in tree(media).items() if k != "link.csv"}
    assert (back / "avatars" / "empty").is_dir()
    assert (back / "report.csv").stat().st_mode & 0o777 == 0o640
    assert not list(restored.rglob(".*part-*"))


def test_files_restore_to_their_recorded_paths(media, tmp_path):
    archive_to(tmp_path / "files.tar", [media])
    original = tree(media)
    (media / "report.csv").write_text("changed since")
    (media / "avatars" / "alice.png").unlink()
    files.extract(tmp_path / "files.tar")
    assert {k: v for k, v in tree(media).items() if k != "link.csv"} == {
        k: v for k, v in original.items() if k != "link.csv"
    }


def test_a_missing_path_fails_the_archive(tmp_path):
    with pytest.raises(BackupError, match="does not exist"), files.archive([tmp_path / "nope"]) as stream:
        stream.read()


def test_a_file_cut_short_while_archived_fails_the_stream_instead_of_ending_it_early(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8 << 20))  # far more than the pipe and one chunk hold
    with pytest.raises(BackupError, match="cannot archive the files"), files.archive([big]) as stream:
        stream.read(1024)
        big.write_bytes(b"")
        while stream.read(1 << 16):
            pass


def test_a_reader_that_stops_early_stops_the_writer(media):
    with pytest.raises(RuntimeError), files.archive([media]) as stream:
        stream.read(1024)
        raise RuntimeError("the upload failed")


def hostile(path: Path, build) -> Path:
    with tarfile.open(path, "w") as tar:
        build(tar)
    return path


def add(tar: tarfile.TarFile, name: str, data: bytes = b"pwned", **fields) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data) if fields.get("type", tarfile.REGTYPE) == tarfile.REGTYPE else 0
    for key, value in fields.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if info.size else None)


HOSTILE = {
    "dot-dot": (lambda tar: add(tar, "safe/../../escaped.txt"), "'..'"),
    "absolute": (lambda tar: add(tar, "/tmp/escaped-absolute.txt"), "absolute"),
    "symlink": (lambda tar: add(tar, "safe/link", type=tarfile.SYMTYPE, linkname="/etc/passwd"), "a link"),
    "hardlink": (lambda tar: add(tar, "safe/hard", type=tarfile.LNKTYPE, linkname="etc/passwd"), "a link"),
    "device": (lambda tar: add(tar, "safe/dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3), "a device"),
    "fifo": (lambda tar: add(tar, "safe/fifo", type=tarfile.FIFOTYPE), "a device or FIFO"),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
@pytest.mark.parametrize("rooted", [True, False], ids=["under-root", "recorded-paths"])
def test_a_hostile_archive_writes_nothing_and_names_the_member(tmp_path, kind, rooted):
    build, reason = HOSTILE[kind]

    def with_innocent_first(tar: tarfile.TarFile) -> None:
        add(tar, str(tmp_path / "innocent.txt").lstrip("/"), b"first member, before the hostile one")
        build(tar)

    path = hostile(tmp_path / "hostile.tar", with_innocent_first)
    root = tmp_path / "root"
    before = set(tmp_path.parent.rglob("*"))
    with pytest.raises(BackupError, match=f"refusing archive member .*{reason}"):
        files.extract(path, root=root if rooted else None)
    assert set(tmp_path.parent.rglob("*")) - before <= {root}  # not even the innocent first member
    assert not Path("/tmp/escaped-absolute.txt").exists()


def test_the_data_filter_refuses_what_escapes_through_a_link_already_on_disk(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "safe").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, root / "safe" / "door")
    path = hostile(tmp_path / "h.tar", lambda tar: add(tar, "safe/door/escaped.txt"))
    with pytest.raises(BackupError, match=r"refusing archive member 'safe/door/escaped\.txt'"):
        files.extract(path, root=root)
    assert list(outside.iterdir()) == []


def test_limits_on_files_and_bytes_hold_before_anything_is_written(tmp_path, settings):
    def three(tar: tarfile.TarFile) -> None:
        for number in range(3):
            add(tar, f"data/{number}.bin", b"x" * 1000)

    path = hostile(tmp_path / "big.tar", three)
    root = tmp_path / "root"
    settings.BACKUP_RESTORE_MAX_FILES = 2
    with pytest.raises(BackupError, match="BACKUP_RESTORE_MAX_FILES=2"):
        files.extract(path, root=root)
    settings.BACKUP_RESTORE_MAX_FILES, settings.BACKUP_RESTORE_MAX_BYTES = 10, 2500
    with pytest.raises(BackupError, match="BACKUP_RESTORE_MAX_BYTES=2500"):
        files.extract(path, root=root)
    assert list(root.rglob("*")) == []
    settings.BACKUP_RESTORE_MAX_BYTES = 3000
    assert files.extract(path, root=root)["count"] == 3


def test_a_file_that_is_not_a_tar_fails_clearly(tmp_path):
    (tmp_path / "x.tar").write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(BackupError, match="not a readable files archive"):
        files.extract(tmp_path / "x.tar", root=tmp_path / "root")
