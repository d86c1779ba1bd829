"""The S3-compatible storage (AWS, MinIO, Ceph, ...): multipart uploads completed on success.

A module of its own so that boto3 (about 35 MiB of every process's memory) is imported only by
processes that use an S3 storage: storage.get_storage() imports it on demand.
"""

import contextlib
import io
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

import boto3
import structlog
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from apps.backups.errors import BackupError, IntegrityError
from apps.backups.storage import Storage, check_key

logger = structlog.get_logger(__name__)
S3_PART_SIZE = 16 << 20  # multipart part size: S3 wants >= 5 MiB for all but the last part


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
        return self.prefix + check_key(key)

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
