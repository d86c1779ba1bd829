"""Latency histograms with fixed logarithmic buckets: cheap to fill, exact to merge across processes.

Percentiles cannot be averaged (the p95 of two web processes is not the mean of
their p95s), but histograms with the same buckets add up bucket by bucket, and a
percentile read from the sum is as good as from one process. Buckets grow by a
factor of 2**(1/8) (9 %), from 10 µs to about 4.6 minutes: a percentile read as
the bucket's geometric middle is within ±4.5 % of the true value, and the
histogram has at most BUCKETS entries, however many requests it counts.
"""

import math
from collections.abc import Iterable, Mapping

LOWEST_MS = 0.01
PER_DOUBLING = 8
BUCKETS = PER_DOUBLING * 25  # 0.01 ms * 2**25 ≈ 335 s; slower requests share the last bucket

Histogram = dict[int, int]  # bucket index -> count


def bucket(ms: float) -> int:
    """The index of the bucket that holds a latency of `ms` milliseconds."""
    if ms <= LOWEST_MS:
        return 0
    return min(int(math.log2(ms / LOWEST_MS) * PER_DOUBLING), BUCKETS - 1)


def middle(index: int) -> float:
    """The geometric middle of a bucket, in milliseconds: what a percentile in it is reported as."""
    return LOWEST_MS * 2 ** ((index + 0.5) / PER_DOUBLING)


def merge(histograms: Iterable[Mapping[int, int]]) -> Histogram:
    """The sum of histograms, bucket by bucket."""
    total: Histogram = {}
    for histogram in histograms:
        for index, count in histogram.items():
            total[index] = total.get(index, 0) + count
    return total


def subtract(later: Mapping[int, int], earlier: Mapping[int, int]) -> Histogram:
    """What was added to a cumulative histogram between two readings of it (empty buckets left out)."""
    return {index: count - earlier.get(index, 0) for index, count in later.items() if count > earlier.get(index, 0)}


def percentile(histogram: Mapping[int, int], fraction: float) -> float | None:
    """The value below which `fraction` (0 < fraction <= 1) of the counted latencies lie; None when empty."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = max(math.ceil(fraction * total), 1)  # the nearest-rank definition
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return middle(index)
    return middle(max(histogram))  # unreachable: seen reaches total


def from_json(data: Mapping[str, int]) -> Histogram:
    """A histogram read back from JSON, whose object keys are strings."""
    return {int(index): int(count) for index, count in data.items()}
