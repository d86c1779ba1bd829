"""Epochs in the shared cache (the local-memory cache embedded, Redis in the PostgreSQL run)."""

import uuid

import pytest
from django.core.cache import caches
from django.test import override_settings

from apps.core import epochs
from tests.services import REDIS_DOWN


@pytest.fixture
def two(monkeypatch) -> tuple[epochs.Epoch, epochs.Epoch]:
    """Two epochs of this test's own, and only they (the portal's own are left out of the reads)."""
    monkeypatch.setattr(epochs, "_keys", [])
    return epochs.Epoch(f"test:{uuid.uuid4().hex}"), epochs.Epoch(f"test:{uuid.uuid4().hex}")


def test_an_epoch_reads_0_until_it_moves_then_a_new_value_each_time(two):
    first, _ = two
    assert first.read() == 0

    values = []
    for _ in range(3):
        first.move()
        values.append(first.read())

    assert 0 not in values and len(set(values)) == 3


def test_outside_a_request_every_read_asks_the_cache(two):
    first, _ = two
    first.move()
    caches["default"].set(first.key, 7, timeout=None)  # another process's move

    assert first.read() == 7


def test_within_a_request_the_first_read_reads_every_epoch_and_the_others_are_answered_from_it(two):
    first, second = two
    with epochs.one_read_per_request():
        assert (first.read(), second.read()) == (0, 0)
        caches["default"].set_many({first.key: 7, second.key: 8}, timeout=None)  # moved meanwhile elsewhere

        assert (first.read(), second.read()) == (0, 0)  # as at the request's first read

    assert (first.read(), second.read()) == (7, 8)


def test_a_move_within_a_request_is_read_by_the_rest_of_it(two):
    first, second = two
    with epochs.one_read_per_request():
        assert first.read() == 0
        first.move()

        assert first.read() not in (0, None)
        assert second.read() == 0


def test_with_the_cache_unreadable_every_epoch_reads_none_and_it_is_logged(two, log_lines):
    first, second = two
    with override_settings(CACHES=REDIS_DOWN), epochs.one_read_per_request():
        assert (first.read(), second.read()) == (None, None)

    assert [line["event"] for line in log_lines()].count("epoch_unreadable") == 1
