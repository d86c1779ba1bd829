import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import time_machine

from apps.health.checks import Check, Outcome, Status, registry
from apps.health.checks.base import Registry
from tests import services

START = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


class Scripted:
    """Checks whose outcome the test sets: outcomes[name] is what the check returns next."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.outcomes: dict[str, Outcome] = {}
        self.calls: dict[str, int] = {}

    def add(self, name: str, status: Status = Status.OK, message: str = "fine", **options) -> str:
        self.outcomes[name] = Outcome(Status(status), message)

        def check() -> Outcome:
            self.calls[name] = self.calls.get(name, 0) + 1
            return self.outcomes[name]

        self.registry.register(name, **options)(check)
        return name

    def set(self, name: str, status: Status, message: str = "") -> None:
        self.outcomes[name] = Outcome(Status(status), message or str(status))


@pytest.fixture
def only_checks(monkeypatch) -> Iterator[Registry]:
    """The registry emptied for the test (built-in checks and providers put back after it)."""
    monkeypatch.setattr(registry, "_checks", {})
    monkeypatch.setattr(registry, "_providers", [])
    yield registry


@pytest.fixture
def scripted(only_checks) -> Scripted:
    return Scripted(only_checks)


@pytest.fixture
def with_targets(only_checks) -> Registry:
    """Only the HealthTarget checks."""
    from apps.health.checks import targets

    only_checks.provider(targets.target_checks)
    return only_checks


@pytest.fixture
def hang() -> Iterator[Callable[[str], Check]]:
    """Checks that block until the test ends (then they return, so no thread outlives the test for long)."""
    release = threading.Event()

    def make(name: str, timeout: float = 0.5) -> Check:
        def blocked() -> Outcome:
            release.wait(30)
            return Outcome(Status.OK, "released")

        return Check(name, blocked, timeout=timeout)

    yield make
    release.set()


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture(scope="session", autouse=True)
def broker_in_memory() -> Iterator[None]:
    """Tasks and the Celery checks use an in-memory broker, never a developer's var/broker.

    In place before anything connects: the app keeps its first connection pool
    (tests/conftest.py's celery_worker uses the same in-memory broker).
    """
    with services.broker_in_memory():
        yield
