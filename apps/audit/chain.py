"""The hash chain: each sealed event's hash covers its content and the previous event's hash.

Events are inserted unsealed (by record() and by the capture triggers, from any
number of concurrent transactions) and sealed here in order, one sealer at a
time: a PostgreSQL advisory lock, or SQLite's single writer. Sealing after the
fact keeps writers from queueing on the chain's head inside their own
transactions; every event is sealed right after its transaction commits, and a
periodic sweep seals any whose process died in between.
"""

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from apps.audit.models import AuditCheckpoint, AuditEvent

GENESIS = "0" * 64
SEAL_LOCK = 0x6F707361  # pg_advisory_xact_lock key: "opsa"
HASHED_FIELDS = (
    "timestamp", "actor_id", "actor_username", "action", "outcome", "resource_type", "resource_id",
    "resource_repr", "changes", "details", "ip", "user_agent", "request_id",
)  # fmt: skip


def canonical(row: dict, *, seq: int, prev_hash: str) -> bytes:
    """The bytes an event's hash covers: its content as read back from the database, in canonical JSON."""
    content = {name: row[name] for name in HASHED_FIELDS}
    content["timestamp"] = row["timestamp"].astimezone(UTC).isoformat(timespec="microseconds")
    content.update(seq=seq, prev_hash=prev_hash)
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def event_hash(row: dict, *, seq: int, prev_hash: str) -> str:
    return hashlib.sha256(canonical(row, seq=seq, prev_hash=prev_hash)).hexdigest()


def head() -> tuple[int, str]:
    """(seq, hash) of the last sealed event, or of the latest checkpoint, or the genesis."""
    last = AuditEvent.objects.filter(seq__isnull=False).order_by("-seq").values_list("seq", "hash").first()
    if last:
        return last
    checkpoint = AuditCheckpoint.objects.order_by("-seq").values_list("seq", "hash").first()
    return checkpoint or (0, GENESIS)


def head_start() -> int:
    """The seq the sealed chain starts after: the latest checkpoint's, or 0."""
    return AuditCheckpoint.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def seal(*, batch: int = 1000) -> int:
    """Seal unsealed events in id order; returns how many. Safe to call from anywhere, any number of times."""
    sealed = 0
    while True:
        count = _seal_batch(batch)
        sealed += count
        if count < batch:
            return sealed


@transaction.atomic
def _seal_batch(batch: int) -> int:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEAL_LOCK])
    pending = list(AuditEvent.objects.filter(seq__isnull=True).order_by("id").values("id", *HASHED_FIELDS)[:batch])
    if not pending:
        return 0
    seq, prev_hash = head()
    sealed = []
    for row in pending:
        seq += 1
        digest = event_hash(row, seq=seq, prev_hash=prev_hash)
        sealed.append(AuditEvent(id=row["id"], seq=seq, prev_hash=prev_hash, hash=digest))
        prev_hash = digest
    AuditEvent.objects.all()._seal(sealed)
    return len(sealed)


@dataclass(frozen=True)
class Break:
    """The first place the chain does not hold."""

    seq: int | None
    event_id: int | None
    problem: str
    expected: str
    found: str
    verified: int  # events before it that did verify


def verify(*, chunk: int = 5000) -> Iterator[int | Break]:
    """Walk the sealed chain in order, in bounded memory.

    Yields the running count every chunk, and a Break (then stops) at the first
    edited, missing, inserted or reordered event.
    """
    checkpoint = AuditCheckpoint.objects.order_by("-seq").values_list("seq", "hash").first()
    seq, prev_hash = checkpoint or (0, GENESIS)
    checked = 0
    while True:
        fields = ("id", "seq", "prev_hash", "hash", *HASHED_FIELDS)
        rows = list(AuditEvent.objects.filter(seq__gt=seq).order_by("seq").values(*fields)[:chunk])
        for row in rows:
            if row["seq"] != seq + 1:
                yield Break(seq + 1, row["id"], "missing event", f"seq {seq + 1}", f"seq {row['seq']}", checked)
                return
            if row["prev_hash"] != prev_hash:
                yield Break(row["seq"], row["id"], "broken link", prev_hash, row["prev_hash"], checked)
                return
            expected = event_hash(row, seq=row["seq"], prev_hash=prev_hash)
            if row["hash"] != expected:
                yield Break(row["seq"], row["id"], "content changed", expected, row["hash"], checked)
                return
            seq, prev_hash = row["seq"], row["hash"]
            checked += 1
        yield checked
        if len(rows) < chunk:
            return


@dataclass(frozen=True)
class PrunePlan:
    upto_seq: int  # events with seq up to this one go (0: none)
    events: int
    oldest_kept: datetime | None


def prune_plan(cutoff: datetime) -> PrunePlan:
    """The longest start of the chain whose events are all older than cutoff."""
    sealed = AuditEvent.objects.filter(seq__gt=head_start())
    boundary = sealed.filter(timestamp__gte=cutoff).order_by("seq").first()
    upto = (boundary.seq - 1) if boundary else (sealed.order_by("-seq").values_list("seq", flat=True).first() or 0)
    return PrunePlan(
        upto_seq=upto,
        events=sealed.filter(seq__lte=upto).count(),
        oldest_kept=boundary.timestamp if boundary else None,
    )


def prune(upto_seq: int, *, min_age: timedelta) -> int:
    """Delete sealed events up to upto_seq and leave a checkpoint, in one transaction; returns how many."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT opsportal_audit_prune(%s, %s)", [upto_seq, min_age])
            return cursor.fetchone()[0]
        # SQLite has no guard to pass: the same rules and steps, here.
        if AuditEvent.objects.filter(seq__lte=upto_seq, timestamp__gt=timezone.now() - min_age).exists():
            raise ValueError(f"refusing to prune events younger than {min_age}")
        last = AuditEvent.objects.filter(seq=upto_seq).values_list("hash", flat=True).first()
        if last is None:
            raise ValueError(f"there is no sealed audit event {upto_seq}")
        cursor.execute("DELETE FROM audit_auditevent WHERE seq <= %s", [upto_seq])
        removed = cursor.rowcount
        AuditCheckpoint.objects.create(seq=upto_seq, hash=last, pruned=removed)
        return removed
