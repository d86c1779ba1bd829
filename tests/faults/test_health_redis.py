"""The Redis health check when Redis goes away, hangs, and comes back (reduced: seconds, not minutes).

Redis is reached through a loopback forwarder (tests/faults/forwarder.py) in front
of this machine's real Redis, which the test closes (Redis stopped, or REDIS_URL
pointing at a closed port) and opens again; a Redis that hangs is a port that
accepts and never answers. The checks run as the scheduled run runs them, in
this process; the command runs as its own process.
"""

import json
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from apps.health import services
from apps.health.checks import Status, registry
from apps.health.checks.dependencies import redis_checks
from apps.health.models import CheckState
from tests.conftest import REDIS_URL
from tests.faults.forwarder import Forwarder
from tests.services import free_port, manage, subprocess_env
from tests.services import silent_port as hanging_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A Redis that hangs."""
    with hanging_port() as port:
        yield port


@pytest.fixture
def relay(settings, monkeypatch) -> Iterator[Forwarder]:
    """REDIS_URL through a forwarder to the real Redis; only the Redis check registered."""
    parts = urlsplit(REDIS_URL)
    relay = Forwarder(parts.hostname, parts.port or 6379)
    settings.REDIS_URL = f"redis://127.0.0.1:{relay.port}{parts.path or '/0'}"
    monkeypatch.setattr(registry, "_checks", {})
    monkeypatch.setattr(registry, "_providers", [redis_checks])
    yield relay
    relay.down()


def timed_run() -> tuple[CheckState, float]:
    started = time.monotonic()
    services.run_and_store()
    return CheckState.objects.get(name="redis"), time.monotonic() - started


@pytest.mark.redis
def test_redis_stopped_then_back_is_critical_within_the_timeout_then_ok_on_the_next_run(relay, settings):
    assert timed_run()[0].status == Status.OK

    relay.down()
    state, took = timed_run()
    assert state.status == Status.CRITICAL and "refused" in state.message.lower(), state.message
    assert took <= settings.HEALTH_CHECK_TIMEOUT_SECONDS * 1.1

    relay.up()
    state, _ = timed_run()
    assert state.status == Status.OK and state.message.startswith("PING in ")


@pytest.mark.redis
def test_a_redis_that_hangs_is_critical_on_time_and_the_run_is_not_held_up(relay, settings, silent_port):
    settings.HEALTH_CHECK_TIMEOUT_SECONDS = 1
    working = settings.REDIS_URL
    settings.REDIS_URL = f"redis://127.0.0.1:{silent_port}/0"

    state, took = timed_run()

    assert state.status == Status.CRITICAL and state.message == "timed out after 1 s"
    assert took <= 1 * 1.1

    settings.REDIS_URL = working  # Redis answers again; the hung PING ends at REDIS_TIMEOUT (2 s) at the latest
    deadline = time.monotonic() + 10
    while (state := timed_run()[0]).status != Status.OK and time.monotonic() < deadline:
        time.sleep(0.2)
    assert state.status == Status.OK


@pytest.mark.slow
def test_the_health_command_with_redis_at_a_closed_port_fails_within_the_timeout(var_dir):
    env = subprocess_env(OPSPORTAL_VAR_DIR=var_dir, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", SECRET_KEY="k" * 60)

    started = time.monotonic()
    result = manage("health", "--check", "redis", "--json", "--timeout", "3", env=env)
    took = time.monotonic() - started

    assert result.returncode == 1, result.stderr
    (check,) = json.loads(result.stdout)["checks"]
    assert check["status"] == "critical" and "refused" in check["message"].lower()
    assert check["latency_ms"] < 3000 * 1.1
    assert took < 30  # the process, Django's start included
