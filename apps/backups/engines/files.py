"""Files: a tar of folders and files streamed through a pipe, and an extract that writes only what it should.

The archive is written by a thread into a pipe whose other end is read like a
file, so a 200 MB media folder never sits in memory. Each file's SHA-256 is taken
as it goes into the tar, so a restore (or a drill) can prove it got every file back.

An archive is read twice on extract: first every header is checked (no '..', no
absolute names, no links, no devices, within the configured limits, and through
tarfile's "data" filter), then files are written, each to a temporary name and
renamed, so a hostile or oversized archive is refused before anything is written.
"""

import contextlib
import hashlib
import os
import secrets
import tarfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import structlog
from django.conf import settings

from apps.backups.errors import BackupError

logger = structlog.get_logger(__name__)

CHUNK = 1 << 20
MANIFEST_ENTRIES = 100_000  # per-file entries kept in a summary; counts and bytes always cover every file


class Archive:
    """The readable end of a tar stream; `.summary` is set once it has been read to the end."""

    def __init__(self, paths: Iterable[Path]) -> None:
        read_end, write_end = os.pipe()
        self._reader = os.fdopen(read_end, "rb")
        self._error: BaseException | None = None
        self.summary: dict | None = None
        self._thread = threading.Thread(
            target=self._write, args=(list(paths), os.fdopen(write_end, "wb")), name="backup-archive", daemon=True
        )
        self._thread.start()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._reader.read(size)
        if not data:  # the writer closed its end: finished, or failed part way
            self._thread.join()
            if self._error is not None:
                raise BackupError(f"cannot archive the files: {self._error}") from self._error
        return data

    def close(self) -> None:
        """Stop the writer (a reader that gives up early makes its writes fail) and wait for it."""
        self._reader.close()
        self._thread.join()

    def _write(self, paths: list[Path], pipe: BinaryIO) -> None:
        try:
            with pipe:
                with tarfile.open(fileobj=pipe, mode="w|", format=tarfile.PAX_FORMAT, copybufsize=CHUNK) as tar:
                    summary = _add_all(tar, paths)
                self.summary = summary
        except BrokenPipeError:
            pass  # the reader stopped early: its exception, not ours, says why
        except Exception as error:
            self._error = error


@contextlib.contextmanager
def archive(paths: Iterable[Path]) -> Iterator[Archive]:
    """A tar of `paths` (folders recursively), members named by absolute path without the leading "/".

    Regular files and folders are archived; links and special files are skipped
    (logged), since a restore would refuse them. A missing path is an error.
    """
    stream = Archive(paths)
    try:
        yield stream
    finally:
        stream.close()


def extract(path: Path, *, root: Path | None = None) -> dict:
    """Extract the tar at `path` to its recorded paths, or under `root`; returns its summary.

    The summary has the shape archive() records ("path" is the recorded path,
    whatever the root), so the two can be compared. Raises BackupError naming the
    first member refused, before anything is written.
    """
    destination = Path(root).resolve() if root is not None else Path("/")
    destination.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(path, "r:") as tar:
            for _ in _members(tar, destination):
                pass
        with tarfile.open(path, "r:") as tar:
            return _extract_all(tar, destination)
    except tarfile.TarError as error:
        raise BackupError(f"not a readable files archive: {error}") from error


def _add_all(tar: tarfile.TarFile, paths: list[Path]) -> dict:
    summary = _Summary()
    for top in paths:
        top = Path(top).resolve()
        if not top.exists():
            raise BackupError(f"cannot archive {top}: it does not exist")
        for item in _walk(top):
            try:
                info = tar.gettarinfo(str(item), arcname=str(item).lstrip("/"))
            except FileNotFoundError:
                continue  # deleted since the folder was listed: nothing to keep
            if info is None:  # a socket: tarfile has no type for it
                logger.warning("backup_file_skipped", path=str(item), reason="a socket")
            elif info.isdir():
                tar.addfile(info)
            elif info.isreg():
                with item.open("rb") as file:
                    reader = _Hashing(file)
                    tar.addfile(info, reader)
                summary.add(str(item), info.size, reader.hexdigest())
            else:
                logger.warning("backup_file_skipped", path=str(item), reason="a link or special file")
    return summary.as_dict()


def _walk(top: Path) -> Iterator[Path]:
    """`top` and, for a folder, everything under it in a stable order, without following links."""
    yield top
    if not top.is_dir():
        return
    for folder, folders, files in os.walk(top, onerror=_unreadable):
        folders.sort()
        for name in [*sorted(folders), *sorted(files)]:
            yield Path(folder, name)


def _unreadable(error: OSError) -> None:
    raise BackupError(f"cannot archive {error.filename}: {error.strerror}") from error


def _members(tar: tarfile.TarFile, destination: Path) -> Iterator[tarfile.TarInfo]:
    """Every member, checked and passed through the data filter; memory stays flat whatever their number."""
    count = size = 0
    max_files, max_bytes = settings.BACKUP_RESTORE_MAX_FILES, settings.BACKUP_RESTORE_MAX_BYTES
    while (member := tar.next()) is not None:
        tar.members.clear()  # tarfile keeps every header read; nothing here looks one up again
        _refuse_unsafe(member)
        try:
            member = tarfile.data_filter(member, str(destination))
        except tarfile.FilterError as error:
            raise BackupError(f"refusing archive member {member.name!r}: {error}") from error
        count, size = count + 1, size + member.size
        if count > max_files:
            raise BackupError(f"the archive has more than BACKUP_RESTORE_MAX_FILES={max_files} members")
        if size > max_bytes:
            raise BackupError(f"the archive holds more than BACKUP_RESTORE_MAX_BYTES={max_bytes} bytes")
        yield member


def _refuse_unsafe(member: tarfile.TarInfo) -> None:
    """Refuse, by name, what the data filter might let through under some root: we want none of it anywhere."""
    name = member.name
    if not name or name.startswith("/") or PurePosixPath(name).is_absolute():
        reason = "an absolute path"
    elif ".." in PurePosixPath(name).parts:
        reason = "a '..' in its path"
    elif member.issym() or member.islnk():
        reason = "a link"
    elif member.isdev():
        reason = "a device or FIFO"
    elif not (member.isreg() or member.isdir()):
        reason = "not a regular file or folder"
    else:
        return
    raise BackupError(f"refusing archive member {name!r}: {reason}")


def _extract_all(tar: tarfile.TarFile, destination: Path) -> dict:
    summary = _Summary()
    for member in _members(tar, destination):
        target = destination / member.name
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        digest = _write_file(source, target, mode=member.mode or 0o644, mtime=member.mtime)
        summary.add("/" + member.name, member.size, digest)
    return summary.as_dict()


def _write_file(source: BinaryIO, target: Path, *, mode: int, mtime: float) -> str:
    """Write to a temporary name beside `target`, then rename: a crash never leaves half a file under its name."""
    temporary = target.with_name(f".{target.name}.part-{secrets.token_hex(4)}")
    digest = hashlib.sha256()
    try:
        with temporary.open("xb") as file:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                file.write(chunk)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.utime(temporary, (mtime, mtime))
        os.replace(temporary, target)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise BackupError(f"cannot restore {target}: {error.strerror or error}") from error
        raise
    return digest.hexdigest()


class _Hashing:
    """A file read through, hashing what is read."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._digest.update(data)
        return data

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class _Summary:
    def __init__(self) -> None:
        self.count = self.bytes = 0
        self.entries: list[dict] = []

    def add(self, path: str, size: int, sha256: str) -> None:
        self.count, self.bytes = self.count + 1, self.bytes + size
        if len(self.entries) < MANIFEST_ENTRIES:
            self.entries.append({"path": path, "size": size, "sha256": sha256})

    def as_dict(self) -> dict:
        return {"count": self.count, "bytes": self.bytes, "entries": self.entries}
