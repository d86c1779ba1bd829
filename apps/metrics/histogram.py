"""Latency histograms with fixed logarithmic buckets: cheap to fill, exact to merge across processes.

Percentiles cannot be averaged (the p95 of two web processes is not the mean of
their p95s), but histograms with the same buckets add up bucket by bucket, and a
percentile read from the sum is as good as from one process. Buckets grow by a
factor of 2**(1/8) (9 %), from 10 µs to about 4.6 minutes: a percentile read as
the bucket's geometric middle is within ±4.5 % of the true value, and the
histogram has at most BUCKETS entries, however many requests it counts.
"""

import math
from collections.abc import Iterable, Mapping, Sequence

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


def encode(buckets: Sequence[int]) -> list[int]:
    """A cumulative histogram as JSON carries it: [first bucket in use, its count, the next's, ...] ([] if empty).

    A list of integers rather than {"bucket": count}: decoding it is several
    times cheaper for the collector, which reads every process's report each tick.
    """
    used = [index for index, count in enumerate(buckets) if count]
    if not used:
        return []
    return [used[0], *buckets[used[0] : used[-1] + 1]]


def decode(data: Sequence[int]) -> Histogram:
    """An encoded histogram as {bucket: count} (buckets in use only)."""
    return {index: count for index, count in enumerate(data[1:], data[0] if data else 0) if count}


def grown(later: Sequence[int], earlier: Sequence[int]) -> Histogram:
    """What was added to an encoded cumulative histogram between two readings of it: {bucket: count}."""
    if not earlier:
        return decode(later)
    if not later:
        return {}
    # Align the earlier counts on the later's first bucket (a cumulative histogram only widens).
    first, shift = later[0], earlier[0] - later[0]
    before = [0] * shift + list(earlier[1:]) if shift >= 0 else list(earlier[1 - shift :])
    before += [0] * (len(later) - 1 - len(before))
    pairs = enumerate(zip(later[1:], before, strict=False), first)  # `before` may run past the later's end
    return {index: now - then for index, (now, then) in pairs if now > then}
