"""Baselines for the audit benchmarks: the same work without the audit trail's own cost.

Runs inside a configured Django process (`manage.py shell -c`), as tests/audit/writers.py does:

- write_plain_concurrently(): what audit_append's writers do, as plain django_admin_log
  rows (LogEntry) each in its own transaction, with no record(), no hash chain, no sealing
  (run it under bench.settings_audit_off, so that no connection hook runs either);
- read_chain(): what `audit verify` reads, with the same chunked keyset query, computing nothing.
"""

import json
import time

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import User

from tests.threads import in_threads


def write_plain_concurrently(threads: int, per_thread: int) -> dict:
    """Insert threads x per_thread LogEntry rows from `threads` threads, one transaction each; counts and time."""
    user, _ = User.objects.get_or_create(username="bench-writer")

    def write(writer: int, n: int) -> None:
        LogEntry.objects.create(user_id=user.pk, object_id=str(n), object_repr="bench.append", action_flag=CHANGE,
                                change_message=json.dumps({"writer": writer, "n": n}))  # fmt: skip

    before = LogEntry.objects.count()
    started = time.perf_counter()
    errors = in_threads(threads, per_thread, write)
    elapsed = time.perf_counter() - started
    return {
        "written": LogEntry.objects.count() - before,
        "expected": threads * per_thread,
        "seconds": elapsed,
        "events_per_second": threads * per_thread / elapsed,
        "errors": errors[:5],
    }


def read_chain(*, chunk: int = 5000) -> dict:
    """Stream the sealed events in seq order exactly as chain.verify() fetches them, without checking anything."""
    from django.db import connection

    from apps.audit import chain

    started = time.monotonic()
    seq, read = 0, 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(chain.select_sql("seq > %s ORDER BY seq LIMIT %s"), [seq, chunk])
            rows = chain.fetch_rows(cursor)
            read += len(rows)
            if rows:
                seq = rows[-1][1]
            if len(rows) < chunk:
                return {"read": read, "seconds": round(time.monotonic() - started, 3)}
