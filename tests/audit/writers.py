"""Concurrent audit writers, shared by the concurrency test and bench/audit_append.py.

Runs inside a configured Django process (manage.py shell): each thread records
events, each in its own transaction, as requests and tasks do.
"""

import time

from apps.audit import chain
from apps.audit.models import AuditEvent
from apps.audit.services import record
from tests.threads import in_threads


def write_concurrently(threads: int, per_thread: int) -> dict:
    """Record threads x per_thread events from `threads` threads; return counts, time and the verify result.

    The time runs until every event is sealed into the chain, not just written.
    """
    before = AuditEvent.objects.count()
    started = time.perf_counter()
    errors = in_threads(
        threads, per_thread, lambda writer, n: record("bench.append", details={"writer": writer, "n": n})
    )
    written_after = time.perf_counter() - started
    sealed_in_background = wait_until_sealed(timeout=30.0)  # by the process's sealer, woken by the commits
    elapsed = time.perf_counter() - started
    chain.seal()  # normally nothing is left; the verify below needs everything sealed
    steps = list(chain.verify())
    return {
        "written": AuditEvent.objects.count() - before,
        "expected": threads * per_thread,
        "seconds": elapsed,
        "writing_seconds": written_after,
        "events_per_second": threads * per_thread / elapsed,
        "sealed_in_background": sealed_in_background,
        "unsealed": AuditEvent.objects.filter(seq__isnull=True).count(),
        "intact": not any(isinstance(step, chain.Break) for step in steps),
        "errors": errors[:5],
    }


def wait_until_sealed(timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while AuditEvent.objects.filter(seq__isnull=True).exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
