"""The hash chain: each sealed event's hash covers its content and the previous event's hash.

Events are inserted unsealed (by record() and by the capture triggers, from any
number of concurrent transactions) and sealed here in order, one sealer at a
time: a PostgreSQL advisory lock, or SQLite's single writer. Sealing after the
fact keeps writers from queueing on the chain's head inside their own
transactions: each process seals right after its transactions commit (see
apps.audit.sealer), many events per seal under load, and a periodic sweep seals
any whose process died in between.
"""

import contextvars
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.db import connection, transaction
from django.utils import timezone

from apps.audit.models import AuditCheckpoint, AuditEvent

GENESIS = "0" * 64
SEAL_LOCK = 0x6F707361  # pg_try_advisory_xact_lock key: "opsa"
HASHED_FIELDS = (
    "timestamp", "actor_id", "actor_username", "action", "outcome", "resource_type", "resource_id",
    "resource_repr", "changes", "details", "ip", "user_agent", "request_id",
)  # fmt: skip
TABLE = AuditEvent._meta.db_table
_sealing = contextvars.ContextVar("opsportal_audit_sealing", default=False)


def canonical(content: Sequence[Any], *, seq: int, prev_hash: str) -> bytes:
    """The bytes an event's hash covers: [seq, prev_hash, *content] as compact JSON, UTF-8.

    content holds HASHED_FIELDS in order, as select_sql() reads them back: the
    timestamp as UTC ISO 8601 text with microseconds, changes and details as
    JSON text, which is parsed and written again with sorted keys so that the
    hash does not depend on how the database stores JSON.
    """
    document = [seq, prev_hash, *content]
    changes, details = document[10], document[11]
    try:
        document[10], document[11] = orjson.loads(changes), orjson.loads(details)
        return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):  # numbers past a double, nesting past 255: as stored
        document[10], document[11] = changes, details
        return orjson.dumps(document)


def event_hash(content: Sequence[Any], *, seq: int, prev_hash: str) -> str:
    return hashlib.sha256(canonical(content, seq=seq, prev_hash=prev_hash)).hexdigest()


def select_sql(where: str) -> str:
    """SELECT id, seq, prev_hash, hash, *HASHED_FIELDS, the timestamp as text."""
    columns = [f'"{name}"' for name in ("id", "seq", "prev_hash", "hash", *HASHED_FIELDS)]
    if connection.vendor == "postgresql":  # canonical already
        columns[4] = """to_char("timestamp" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""
    else:  # as stored, past Django's converter
        columns[4] = 'CAST("timestamp" AS TEXT)'
    return f"SELECT {', '.join(columns)} FROM {TABLE} WHERE {where}"  # noqa: S608 - constant SQL


def fetch_rows(cursor: Any) -> list[list[Any]]:
    """The fetched rows, with SQLite's timestamps turned into the canonical text PostgreSQL gives."""
    rows = [list(row) for row in cursor.fetchall()]
    if connection.vendor == "sqlite":
        for row in rows:
            row[4] = _utc_text(row[4])
    return rows


def _utc_text(stored: str) -> str:
    """SQLite's stored UTC time ("YYYY-MM-DD HH:MM:SS" with 0, 3 or 6 decimals) as canonical text."""
    if len(stored) == 26:  # with microseconds, as Django writes it
        return f"{stored[:10]}T{stored[11:]}+00:00"
    moment = datetime.fromisoformat(stored)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds") + "+00:00"


def head() -> tuple[int, str]:
    """(seq, hash) of the last sealed event, or of the latest checkpoint, or the genesis."""
    last = AuditEvent.objects.filter(seq__isnull=False).order_by("-seq").values_list("seq", "hash").first()
    return last or checkpoint()


def checkpoint() -> tuple[int, str]:
    """(seq, hash) the sealed chain starts after: the latest checkpoint's, or the genesis."""
    return AuditCheckpoint.objects.order_by("-seq").values_list("seq", "hash").first() or (0, GENESIS)


def head_start() -> int:
    """The seq the sealed chain starts after: the latest checkpoint's, or 0."""
    return checkpoint()[0]


def sealing() -> bool:
    """True while this thread or task is sealing (its own UPDATEs are not audited writes)."""
    return _sealing.get()


def seal(*, batch: int = 1000) -> int:
    """Seal unsealed events in id order; returns how many this call sealed.

    Safe to call from anywhere, any number of times, from any number of
    processes. On PostgreSQL one sealer works at a time and a caller that
    finds another at work returns at once: the one at work looks for pending
    events again after it lets go of the lock, so an event committed before
    the caller tried is never left behind.
    """
    token = _sealing.set(True)
    try:
        sealed, after = 0, 0
        while True:
            outcome = _seal_batch(batch, after)
            if outcome is None:  # another sealer is at work
                return sealed
            count, after = outcome
            sealed += count
            if count < batch:
                # An event with a lower id may have committed since: look again from the start.
                if not AuditEvent.objects.filter(seq__isnull=True).exists():
                    return sealed
                after = 0
    finally:
        _sealing.reset(token)


@transaction.atomic
def _seal_batch(batch: int, after: int) -> tuple[int, int] | None:
    """Seal up to `batch` pending events with ids above `after`: (how many, the last id), or None if busy.

    The id keyset keeps a long backlog from rescanning what it has just sealed.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [SEAL_LOCK])
            if not cursor.fetchone()[0]:
                return None
        # SQLite: the transaction began with BEGIN IMMEDIATE, the database's one write lock.
        cursor.execute(select_sql("seq IS NULL AND id > %s ORDER BY id LIMIT %s"), [after, batch])
        pending = fetch_rows(cursor)
        if not pending:
            return 0, after
        seq, prev_hash = head()
        seals = []
        for event_id, _, _, _, *content in pending:
            seq += 1
            digest = event_hash(content, seq=seq, prev_hash=prev_hash)
            seals.append((event_id, seq, prev_hash, digest))
            prev_hash = digest
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {TABLE} AS e SET seq = s.seq, prev_hash = s.prev_hash, hash = s.hash"  # noqa: S608
                " FROM unnest(%s::bigint[], %s::bigint[], %s::varchar[], %s::varchar[]) AS s(id, seq, prev_hash, hash)"
                " WHERE e.id = s.id",
                [list(column) for column in zip(*seals, strict=True)],
            )
        else:
            cursor.executemany(
                f"UPDATE {TABLE} SET seq = %s, prev_hash = %s, hash = %s WHERE id = %s",  # noqa: S608
                [(seq, prev, digest, event_id) for event_id, seq, prev, digest in seals],
            )
        return len(seals), seals[-1][0]


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
    seq, prev_hash = checkpoint()
    checked = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(select_sql("seq > %s ORDER BY seq LIMIT %s"), [seq, chunk])
            rows = fetch_rows(cursor)
            for event_id, row_seq, row_prev, row_hash, *content in rows:
                if row_seq != seq + 1:
                    yield Break(seq + 1, event_id, "missing event", f"seq {seq + 1}", f"seq {row_seq}", checked)
                    return
                if row_prev != prev_hash:
                    yield Break(row_seq, event_id, "broken link", prev_hash, row_prev, checked)
                    return
                expected = event_hash(content, seq=row_seq, prev_hash=prev_hash)
                if row_hash != expected:
                    yield Break(row_seq, event_id, "content changed", expected, row_hash, checked)
                    return
                seq, prev_hash = row_seq, row_hash
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
