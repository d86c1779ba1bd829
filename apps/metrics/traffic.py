"""This process's HTTP figures since it started: requests, 4xx, 5xx and a latency histogram per view.

Filled by the middleware (apps.metrics.middleware) on every request, copied by
the process's reporter every interval. Cumulative, never reset while the
process lives: the collector subtracts what it consumed last time, so a report
read late or twice never loses or double-counts a request.
"""

import math
import threading

from apps.metrics import histogram


class ViewTraffic:
    """Cumulative figures of one view in this process since it started."""

    __slots__ = ("buckets", "client_errors", "requests", "server_errors")

    def __init__(self) -> None:
        self.requests = 0
        self.client_errors = 0
        self.server_errors = 0
        self.buckets = [0] * histogram.BUCKETS

    def as_json(self) -> list:
        """[requests, 4xx, 5xx, encoded histogram (apps.metrics.histogram.encode)]: what a report carries."""
        return [self.requests, self.client_errors, self.server_errors, histogram.encode(self.buckets)]


class Traffic:
    """This process's HTTP figures, by view name.

    A plain lock is the cheapest correct choice here: the threads of one process
    serve requests concurrently, an uncontended acquire costs well under a
    microsecond, and the critical section is a few additions.
    """

    def __init__(self) -> None:
        self._views: dict[str, ViewTraffic] = {}
        self._lock = threading.Lock()

    def record(self, view: str, status: int, seconds: float) -> None:
        """Count one request served by `view` with `status` in `seconds`."""
        ms = seconds * 1000.0
        # histogram.bucket(), inlined: this runs on every request.
        index = 0 if ms <= histogram.LOWEST_MS else int(math.log2(ms / histogram.LOWEST_MS) * histogram.PER_DOUBLING)
        with self._lock:
            stats = self._views.get(view)
            if stats is None:
                stats = self._views[view] = ViewTraffic()
            stats.requests += 1
            if status >= 500:
                stats.server_errors += 1
            elif status >= 400:
                stats.client_errors += 1
            stats.buckets[min(index, histogram.BUCKETS - 1)] += 1

    def snapshot(self) -> dict[str, list]:
        """Every view's cumulative figures, JSON-ready: {view: [requests, 4xx, 5xx, encoded histogram]}."""
        with self._lock:
            return {view: stats.as_json() for view, stats in self._views.items()}

    def reset(self) -> None:
        """Forget everything: a forked child starts from zero (its parent's requests were the parent's).

        Runs in the child right after fork, where the parent's lock may have been
        held by another thread that no longer exists: a new lock, not the old one.
        """
        self._lock = threading.Lock()
        self._views = {}


traffic = Traffic()
