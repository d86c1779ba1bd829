"""Where backups are kept: a local directory or an S3-compatible bucket, behind one small interface.

Keys are "/"-separated names relative to the storage root ("<policy>/<stamp>-<id>/<artifact>").
An object appears under its key only once it is complete: a killed run leaves at most a partial
object under another name (a ".part" file, an unfinished multipart upload), which
cleanup_partial() removes on the next run. A backup is written under a staging prefix and
publish() then moves it, whole, to its final prefix.
"""

import contextlib
import os
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import structlog
from django.conf import settings

from apps.backups.errors import BackupError, IntegrityError

logger = structlog.get_logger(__name__)
PART_MARK = ".part-"  # local temp names: ".<name>.part-<token>"


class Storage(ABC):
    """A flat namespace of immutable objects written atomically."""

    name: str

    @abstractmethod
    def writer(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """Yield a writable file; the object appears under key only when the block exits cleanly."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A streamed reader of the object; IntegrityError if it does not exist."""

    @abstractmethod
    def size(self, key: str) -> int:
        """The object's size in bytes; IntegrityError if it does not exist."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Complete objects whose key starts with prefix, sorted."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object (partial ones too) whose key starts with prefix; returns how many."""

    @abstractmethod
    def cleanup_partial(self, prefix: str = "") -> int:
        """Remove what killed runs left under prefix (unfinished writes); returns how many.

        Only call it while no write under prefix is in progress (the backup lease of the policy whose
        folder prefix names guarantees that).
        """

    @abstractmethod
    def publish(self, staging: str, final: str, *, last: Sequence[str] = ()) -> None:
        """Move every object under the folder prefix staging ("a/b/") to the folder prefix final.

        Nothing may exist under final yet. The names in last (relative to the prefix) arrive after
        every other object, in that order: a reader that finds them finds the rest too. Afterwards
        nothing is left under staging.
        """


def check_key(key: str) -> str:
    """Refuse keys that could name something outside the storage root."""
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in key.split("/")):
        raise BackupError(f"invalid storage key {key!r}")
    return key


class LocalStorage(Storage):
    """A directory. Writes go to a hidden temp file beside the target: fsync, rename, fsync the directory."""

    def __init__(self, root: Path, *, name: str = "local") -> None:
        self.root = Path(root)
        self.name = name

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackupError(f"cannot create {path.parent}: {exc.strerror}") from exc
        temp = path.with_name(f".{path.name}{PART_MARK}{secrets.token_hex(4)}")
        file = open(temp, "xb")  # noqa: SIM115 (closed below on every path)
        try:
            yield file
            file.flush()
            os.fsync(file.fileno())
            file.close()
            os.replace(temp, path)
        except BaseException:
            file.close()
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise IntegrityError(key, f"missing from storage {self.name!r}") from None

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise IntegrityError(key, f"missing from storage {self.name!r}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        return sorted(key for key, _ in self._walk(prefix) if PART_MARK not in key)

    def delete_prefix(self, prefix: str) -> int:
        """A folder prefix ("a/b/") is first renamed to a partial name: a kill leaves it whole or partial."""
        if prefix.endswith("/") and self._path(prefix.rstrip("/")).is_dir():
            prefix = self._retire(prefix.rstrip("/")) + "/"
        found = list(self._walk(prefix))
        for _, path in found:
            path.unlink(missing_ok=True)
        folders = {path.parent for _, path in found}
        if prefix.endswith("/"):  # a backup's folder goes too, even when a killed run left it empty
            folders.add(self._path(prefix.rstrip("/")))
        self._prune_dirs(folders)
        return len(found)

    def cleanup_partial(self, prefix: str = "") -> int:
        partial = [(key, path) for key, path in self._walk(prefix) if PART_MARK in key]
        for _, path in partial:
            path.unlink(missing_ok=True)
        self._prune_dirs({path.parent for _, path in partial})
        return len(partial)

    def _retire(self, folder: str) -> str:
        """Rename the folder to a hidden partial name beside it (atomic, made durable); returns its new key."""
        parent, _, name = folder.rpartition("/")
        retired = f"{parent}/.{name}{PART_MARK}{secrets.token_hex(4)}".lstrip("/")
        try:
            os.rename(self._path(folder), self._path(retired))
            _fsync_dir(self._path(retired).parent)
        except OSError as exc:
            raise BackupError(f"cannot delete {folder}: {exc.strerror}") from exc
        return retired

    def publish(self, staging: str, final: str, *, last: Sequence[str] = ()) -> None:
        """One rename of the staging folder: the final folder appears whole or not at all (last is moot)."""
        source, target = self._path(staging.rstrip("/")), self._path(final.rstrip("/"))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(source, target)  # same filesystem: atomic; refuses a non-empty target
            _fsync_dir(target.parent)
            _fsync_dir(source.parent)
        except OSError as exc:
            raise BackupError(f"cannot publish {staging} as {final}: {exc.strerror}") from exc
        self._prune_dirs({source.parent})  # the staging folder of the policy, once it holds no other run

    def _walk(self, prefix: str) -> Iterator[tuple[str, Path]]:
        """(key, path) of the files whose key starts with prefix: walks only the prefix's deepest folder."""
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self._path(folder) if folder else self.root
        for directory, _, names in os.walk(base):
            for name in names:
                path = Path(directory, name)
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key, path

    def _prune_dirs(self, folders: set[Path]) -> None:
        """Remove folders left empty, deepest first, never the root."""
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            while folder != self.root and self.root in folder.parents:
                try:
                    folder.rmdir()
                except OSError:  # not empty (or gone): stop climbing
                    break
                folder = folder.parent


def _fsync_dir(path: Path) -> None:
    """Make a rename durable: the directory entry is only on disk once the directory is synced."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def get_storage(name: str) -> Storage:
    """The storage named in settings.BACKUP_STORAGES."""
    config = settings.BACKUP_STORAGES.get(name)
    if config is None:
        known = ", ".join(sorted(settings.BACKUP_STORAGES)) or "none"
        raise BackupError(f"unknown backup storage {name!r} (BACKUP_STORAGES has: {known})")
    options = {key: value for key, value in config.items() if key != "kind"}
    if config.get("kind") == "local":
        return LocalStorage(Path(options["path"]), name=name)
    if config.get("kind") == "s3":
        from apps.backups.s3 import S3Storage  # boto3 costs every process ~35 MiB: loaded only when used

        return S3Storage(name=name, **options)
    raise BackupError(f"backup storage {name!r} has an unknown kind {config.get('kind')!r} (local or s3)")
