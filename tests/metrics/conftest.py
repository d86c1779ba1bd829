"""Fixtures of the metrics tests: a fake clock, a clean HTTP traffic record."""

from collections.abc import Iterator

import pytest
import time_machine

from apps.metrics.traffic import Traffic, traffic
from tests.metrics.store_support import START


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def fresh_traffic() -> Iterator[Traffic]:
    """This process's traffic record, emptied before and after the test (other tests' requests left out)."""
    traffic.reset()
    yield traffic
    traffic.reset()
