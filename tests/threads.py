"""Concurrent writers for tests and benchmarks (needs a configured Django, no app of the portal's)."""

import threading
from collections.abc import Callable

from django.db import connection, transaction


def in_threads(threads: int, per_thread: int, write: Callable[[int, int], object]) -> list[str]:
    """Call write(writer, n) per_thread times from each of `threads` threads started at once, each call in a
    transaction of its own; return the errors (the first of each thread)."""
    start = threading.Barrier(threads)
    errors: list[str] = []

    def writer(number: int) -> None:
        start.wait()
        try:
            for n in range(per_thread):
                with transaction.atomic():
                    write(number, n)
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            connection.close()

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return errors
