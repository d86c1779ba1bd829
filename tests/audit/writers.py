"""Concurrent audit writers, shared by the concurrency test and bench/audit_append.py.

Runs inside a configured Django process (manage.py shell): each thread records
events, each in its own transaction, as requests and tasks do.
"""

import threading
import time

from django.db import connection, transaction

from apps.audit import chain
from apps.audit.models import AuditEvent
from apps.audit.services import record


def write_concurrently(threads: int, per_thread: int) -> dict:
    """Record threads x per_thread events from `threads` threads; return counts, time and the verify result.

    The time runs until every event is sealed into the chain, not just written.
    """
    start = threading.Barrier(threads)
    errors: list[str] = []

    def writer(number: int) -> None:
        start.wait()
        try:
            for n in range(per_thread):
                with transaction.atomic():
                    record("bench.append", details={"writer": number, "n": n})
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            connection.close()

    before = AuditEvent.objects.count()
    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
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
