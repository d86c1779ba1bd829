"""Where backups are kept: a local directory or an S3-compatible bucket, behind one small interface.

Keys are "/"-separated names relative to the storage root ("<policy>/<stamp>-<id>/<artifact>").
An object appears under its key only once it is complete: a killed run leaves at most a partial
object under another name (a ".part" file, an unfinished multipart upload), which
cleanup_partial() removes on the next run. A backup is written under a staging prefix and
publish() then moves it, whole, to its final prefix.
"""

import contextlib
import io
import os
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import boto3
import structlog
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from apps.backups.errors import BackupError, IntegrityError

logger = structlog.get_logger(__name__)
PART_MARK = ".part-"  # local temp names: ".<name>.part-<token>"
S3_PART_SIZE = 16 << 20  # multipart part size: S3 wants >= 5 MiB for all but the last part


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


def _check_key(key: str) -> str:
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
        return self.root.joinpath(*_check_key(key).split("/"))

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
        return sorted(key for key, _ in self._walk(prefix) if PART_MARK not in key.rsplit("/", 1)[-1])

    def delete_prefix(self, prefix: str) -> int:
        found = list(self._walk(prefix))
        for _, path in found:
            path.unlink(missing_ok=True)
        folders = {path.parent for _, path in found}
        if prefix.endswith("/"):  # a backup's folder goes too, even when a killed run left it empty
            folders.add(self._path(prefix.rstrip("/")))
        self._prune_dirs(folders)
        return len(found)

    def cleanup_partial(self, prefix: str = "") -> int:
        partial = [(key, path) for key, path in self._walk(prefix) if PART_MARK in path.name]
        for _, path in partial:
            path.unlink(missing_ok=True)
        return len(partial)

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


class S3Storage(Storage):
    """An S3-compatible bucket (AWS, MinIO, Ceph, ...). Writes are multipart uploads completed on success."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key: str = "",
        secret_key: str = "",
        name: str = "s3",
    ) -> None:
        self.name = name
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=60),
        )

    def __repr__(self) -> str:  # never the credentials
        return f"S3Storage(name={self.name!r}, bucket={self.bucket!r}, prefix={self.prefix!r})"

    def _key(self, key: str) -> str:
        return self.prefix + _check_key(key)

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        upload = _MultipartWriter(self, self._key(key))
        try:
            with _s3_errors(key):
                yield upload  # type: ignore[misc]
                upload.complete()
        except BaseException:
            upload.abort()
            raise

    def open(self, key: str) -> BinaryIO:
        with _s3_errors(key):
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]

    def size(self, key: str) -> int:
        with _s3_errors(key):
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"]

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except IntegrityError:
            return False
        return True

    def list(self, prefix: str = "") -> list[str]:
        return sorted(obj["Key"][len(self.prefix) :] for obj in self._objects(prefix))

    def delete_prefix(self, prefix: str) -> int:
        keys = [obj["Key"] for obj in self._objects(prefix)]
        with _s3_errors(prefix):
            for start in range(0, len(keys), 1000):  # DeleteObjects takes 1,000 keys at most
                batch = [{"Key": key} for key in keys[start : start + 1000]]
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys) + self.cleanup_partial(prefix)

    def cleanup_partial(self, prefix: str = "") -> int:
        count = 0
        with _s3_errors(prefix):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    count += 1
        return count

    def publish(self, staging: str, final: str, *, last: Sequence[str] = ()) -> None:
        """Server-side copies (multipart beyond 5 GB), the names in last at the end; then staging is deleted."""
        names = [obj["Key"][len(self.prefix + staging) :] for obj in self._objects(staging)]
        ordered = [name for name in names if name not in last] + [name for name in last if name in names]
        for name in ordered:
            with _s3_errors(staging + name):
                source = {"Bucket": self.bucket, "Key": self._key(staging + name)}
                self.client.copy(source, self.bucket, self._key(final + name))
        self.delete_prefix(staging)

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        with _s3_errors(prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                yield from page.get("Contents", [])


class _MultipartWriter(io.RawIOBase):
    """Buffers one part at a time: memory stays at one part whatever the object's size.

    The upload is created with the first full part; a smaller object is one PutObject on completion.
    """

    def __init__(self, storage: S3Storage, key: str) -> None:
        super().__init__()
        self.storage, self.key = storage, key
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.buffer += data
        while len(self.buffer) >= S3_PART_SIZE:
            self._upload_part(bytes(self.buffer[:S3_PART_SIZE]))
            del self.buffer[:S3_PART_SIZE]
        return len(data)

    def _upload_part(self, body: bytes) -> None:
        client, bucket = self.storage.client, self.storage.bucket
        if self.upload_id is None:
            self.upload_id = client.create_multipart_upload(Bucket=bucket, Key=self.key)["UploadId"]
        number = len(self.parts) + 1
        answer = client.upload_part(Bucket=bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body)
        self.parts.append({"ETag": answer["ETag"], "PartNumber": number})

    def complete(self) -> None:
        client, bucket = self.storage.client, self.storage.bucket
        if self.upload_id is None:
            client.put_object(Bucket=bucket, Key=self.key, Body=bytes(self.buffer))
            return
        if self.buffer:
            self._upload_part(bytes(self.buffer))
        client.complete_multipart_upload(
            Bucket=bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )
        self.upload_id = None

    def abort(self) -> None:
        """Best effort: an upload left behind is removed by the next run's cleanup_partial()."""
        if self.upload_id is None:
            return
        try:
            client, bucket = self.storage.client, self.storage.bucket
            client.abort_multipart_upload(Bucket=bucket, Key=self.key, UploadId=self.upload_id)
        except (BotoCoreError, ClientError):
            logger.warning("backup_s3_abort_failed", key=self.key, exc_info=True)


@contextlib.contextmanager
def _s3_errors(key: str) -> Iterator[None]:
    """Turn the client's exceptions into ours: a missing object is an integrity problem, the rest a BackupError."""
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            raise IntegrityError(key, "missing from S3 storage") from None
        raise BackupError(f"S3 storage: {code or 'error'} on {key}: {exc}") from exc
    except BotoCoreError as exc:
        raise BackupError(f"S3 storage unreachable ({key}): {exc}") from exc


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
        return S3Storage(name=name, **options)
    raise BackupError(f"backup storage {name!r} has an unknown kind {config.get('kind')!r} (local or s3)")
