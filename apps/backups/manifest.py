"""The manifest of a backup: what it holds and the checksums that prove it, stored twice.

Both copies are written after every artifact, the copy last, and published last (NAMES, in that
order), so a backup whose copy exists is complete. Reading compares the two with each other and
with the SHA-256 on the Backup row: an edited, truncated or missing manifest is an IntegrityError,
never a silently trusted file.
"""

import hashlib
import io
from typing import Any

import orjson

from apps.backups.errors import IntegrityError
from apps.backups.storage import Storage

FORMAT = 1
NAME = "manifest.json"
COPY_NAME = "manifest.copy.json"
NAMES = (NAME, COPY_NAME)  # the order they are written and published in


def encode(manifest: dict[str, Any]) -> bytes:
    """The stored bytes: sorted keys, so the same manifest always hashes the same."""
    return orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS)


def write(storage: Storage, location: str, manifest: dict[str, Any]) -> str:
    """Store the manifest and then its copy under location; returns their SHA-256."""
    data = encode(manifest)
    for name in NAMES:
        with storage.writer(f"{location}/{name}") as target:
            target.write(data)
    return hashlib.sha256(data).hexdigest()


def load(storage: Storage, location: str, *, sha256: str) -> dict[str, Any]:
    """Read and cross-check both copies; sha256 is the one recorded on the Backup row."""
    first = _read(storage, f"{location}/{NAME}")
    second = _read(storage, f"{location}/{COPY_NAME}")
    if first != second:
        raise IntegrityError(f"{location}/{NAME}", "the manifest and its copy differ")
    if hashlib.sha256(first).hexdigest() != sha256:
        raise IntegrityError(f"{location}/{NAME}", "the manifest's SHA-256 is not the one recorded for this backup")
    try:
        manifest = orjson.loads(first)
    except orjson.JSONDecodeError as exc:
        raise IntegrityError(f"{location}/{NAME}", f"not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IntegrityError(f"{location}/{NAME}", f"not a format {FORMAT} manifest")
    return manifest


def _read(storage: Storage, key: str) -> bytes:
    out = io.BytesIO()
    with storage.open(key) as stored:  # IntegrityError when missing
        while chunk := stored.read(1 << 20):
            out.write(chunk)
    return out.getvalue()
