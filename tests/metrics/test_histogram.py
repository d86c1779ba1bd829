"""Latency histograms: buckets, percentiles within the bucket error, merging, the encoded form, growth."""

import random

import pytest

from apps.metrics import histogram


def test_a_percentile_is_within_the_bucket_error_of_the_exact_one():
    random.seed(3)
    latencies = [random.lognormvariate(3, 1.5) for _ in range(10_000)]  # ms, a long tail
    counts = histogram.merge([{histogram.bucket(ms): 1} for ms in latencies])

    for fraction in (0.5, 0.95, 0.99):
        exact = sorted(latencies)[int(fraction * len(latencies)) - 1]
        assert histogram.percentile(counts, fraction) == pytest.approx(exact, rel=0.05)
    assert histogram.percentile({}, 0.95) is None


def test_extremes_land_in_the_first_and_last_buckets():
    assert histogram.bucket(0) == 0 and histogram.bucket(0.001) == 0
    assert histogram.bucket(10**9) == histogram.BUCKETS - 1


def test_merging_adds_bucket_by_bucket():
    assert histogram.merge([{1: 2, 5: 1}, {5: 3, 9: 1}]) == {1: 2, 5: 4, 9: 1}


def test_the_encoded_form_round_trips_and_growth_is_what_was_added():
    earlier = [0] * histogram.BUCKETS
    earlier[10], earlier[12] = 3, 1
    later = list(earlier)
    later[8], later[12], later[40] = 2, 4, 1

    assert histogram.encode(earlier) == [10, 3, 0, 1]
    assert histogram.decode(histogram.encode(later)) == {8: 2, 10: 3, 12: 4, 40: 1}
    assert histogram.grown(histogram.encode(later), histogram.encode(earlier)) == {8: 2, 12: 3, 40: 1}
    assert histogram.grown(histogram.encode(later), []) == {8: 2, 10: 3, 12: 4, 40: 1}
    assert histogram.encode([0] * histogram.BUCKETS) == [] and histogram.decode([]) == {}
