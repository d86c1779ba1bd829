"""readiness(): the database, and with REDIS_URL Redis and the broker; on time even when one hangs."""

import time
from collections.abc import Iterator

import pytest

from apps.health import runner, services
from opsportal.celery import app
from tests.services import free_port
from tests.services import silent_port as hanging_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A Redis and a broker that hang; closed after the test."""
    with hanging_port() as port:
        yield port
    deadline = time.monotonic() + 5  # closing cuts the waiting probes off: let them end within the test
    while runner.in_flight() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_the_embedded_portal_is_ready_with_its_database():
    assert services.readiness(2) == (True, {})


def test_a_refused_redis_makes_the_portal_not_ready(settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"

    ready, failures = services.readiness(2)

    assert not ready and list(failures) == ["redis"]
    assert "refused" in failures["redis"].lower()


def test_readiness_answers_within_its_timeout_when_redis_and_the_broker_hang(settings, silent_port):
    settings.REDIS_URL = f"redis://127.0.0.1:{silent_port}/0"
    saved = app.conf.broker_url
    app.conf.broker_url = settings.REDIS_URL
    try:
        started = time.monotonic()
        ready, failures = services.readiness(0.5)
        took = time.monotonic() - started
    finally:
        app.conf.broker_url = saved

    assert not ready
    assert failures == {"redis": "timed out after 0.5 s", "broker": "timed out after 0.5 s"}
    assert took < 0.5 * 1.1
