"""The arithmetic of metric rules: a window of raw samples reduced to one number, and its comparison.

Pure functions over lists, so that the evaluation can fetch every series once
and reduce it for each of its rules in Python (one query, whatever the number
of rules), and so that tests can check each one against a hand computation.
"""

import math
import operator
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


@dataclass
class Window:
    """One series' samples over the longest window any rule on it asks for, oldest first (Unix seconds)."""

    last_at: float | None = None  # the series' newest sample ever, from Series.last_at
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def since(self, start: float) -> tuple[Sequence[float], Sequence[float]]:
        """The samples taken at or after `start`."""
        first = bisect_left(self.times, start)
        return self.times[first:], self.values[first:]

    def newest(self) -> float | None:
        """When the series was last sampled, by its row or by its samples, whichever is later."""
        candidates = [t for t in (self.last_at, self.times[-1] if self.times else None) if t is not None]
        return max(candidates) if candidates else None


def average(times: Sequence[float], values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def maximum(times: Sequence[float], values: Sequence[float]) -> float | None:
    return max(values) if values else None


def minimum(times: Sequence[float], values: Sequence[float]) -> float | None:
    return min(values) if values else None


def rate(times: Sequence[float], values: Sequence[float]) -> float | None:
    """Change per second between the first and the last sample of the window (negative when falling).

    Not counter-reset aware as Prometheus' rate(): the collector already stores
    counters as per-second rates, so a rule's series is a gauge.
    """
    if len(values) < 2 or times[-1] <= times[0]:
        return None  # one sample has no slope
    return (values[-1] - values[0]) / (times[-1] - times[0])


def p95(times: Sequence[float], values: Sequence[float]) -> float | None:
    """The 95th percentile, interpolated linearly between the closest ranks (numpy's default, 'linear')."""
    if not values:
        return None
    ordered = sorted(values)
    rank = 0.95 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


REDUCERS: dict[str, Callable[[Sequence[float], Sequence[float]], float | None]] = {
    "avg": average,
    "max": maximum,
    "min": minimum,
    "rate": rate,
    "p95": p95,
}


def evaluate(aggregation: str, window_seconds: int, data: Window | None, now: float) -> float | None:
    """The rule's value at `now`, or None when there is no data to judge by.

    `absent` is the seconds since the series' newest sample ever: None until the
    series has had one (a fresh install, before the first collection, is not a
    dead collector), then it grows for as long as nothing new arrives.
    """
    if data is None:
        return None
    if aggregation == "absent":
        newest = data.newest()
        return None if newest is None else max(now - newest, 0.0)
    times, values = data.since(now - window_seconds)
    return REDUCERS[aggregation](times, values)
