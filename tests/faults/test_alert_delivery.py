"""Alert delivery under faults, on PostgreSQL + Redis with real Celery processes: at least once, never lost.

The portal runs as in production, in processes of its own (tests/faults/harness.py):
a scratch database, a Redis database of its own (14 or 15), `celery -A opsportal worker` (prefork, 2
children, acks_late) and `celery -A opsportal beat` ticking every second
(ALERTS_TICK_SECONDS=1, ALERTS_LEASE_SECONDS=10, ALERTS_DELIVERY_TIMEOUT_SECONDS=2,
retries 1 s doubling to 4 s);
alerts are fired with services.alert_fire() from `manage.py shell` processes, to a
webhook channel (internal) pointing at a receiver on loopback in this process.
The scenarios themselves are in tests/faults/scenarios.py.

Sizes: CI runs the outage for 10 s and the kill burst with 200 notifications;
`python -m bench.alerts_faults` runs them at full size (a 2-minute outage, 1,000
notifications), with the same code.
"""

import contextlib
import os
import signal

import pytest

from tests.faults import scenarios
from tests.faults.harness import Portal, Receiver, hard_timeout, portal

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.xdist_group("alert_faults")]

# A Redis database (broker and layer) per pytest-xdist worker: two portals on one database would take
# each other's tasks, and each empties its database when it starts (this machine runs 2 workers: 14, 15).
REDIS_DB = 14 + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")) % 2
OUTAGE_SECONDS = 10  # full: 120 (bench/alerts_faults.py)
BURST = 200  # full: 1,000
KILLS = 3


@pytest.fixture(scope="module")
def receiver() -> Receiver:
    receiver = Receiver()
    yield receiver
    receiver.down()


@pytest.fixture(scope="module")
def installed(tmp_path_factory, receiver) -> Portal:
    """The portal, with its beat and worker running (each test leaves the worker running)."""
    folder = tmp_path_factory.mktemp("alert-faults")
    with contextlib.ExitStack() as stack:
        with hard_timeout(120, "setting up the portal"):
            installed = stack.enter_context(
                # Retries within seconds, not the production minutes: the outage's retry then comes
                # soon after the receiver is back whatever the jitter drew (bench/ keeps the defaults).
                portal(
                    os.environ["DATABASE_URL"],
                    os.environ["REDIS_URL"],
                    REDIS_DB,
                    folder,
                    ALERTS_RETRY_FIRST_SECONDS="1",
                    ALERTS_RETRY_MAX_SECONDS="4",
                )
            )
            installed.start_beat()
            installed.start_worker(wait=True)
        yield installed


def test_a_500_then_a_200_is_delivered_with_exactly_one_more_attempt(installed, receiver):
    with hard_timeout(60, "500 then 200"):
        result = scenarios.retry_after_500(installed, receiver)

    [(key, row)] = result["report"]["notifications"].items()
    assert row["status"] == "delivered" and row["attempts"] == 2
    assert [(a["status_code"], a["delivered"]) for a in result["report"]["attempts"]] == [(500, False), (200, True)]
    first, second = result["received"]
    assert (first.key, first.status, second.key, second.status) == (key, 500, key, 200)
    assert first.body == second.body, "every attempt sends the same notification"


def test_a_receiver_that_is_down_gets_the_notification_when_it_is_back(installed, receiver):
    """Down for 10 s in CI (2 minutes in bench/alerts_faults.py); delivered at the first try after it returns."""
    with hard_timeout(OUTAGE_SECONDS + 90, "receiver outage"):
        result = scenarios.outage(installed, receiver, seconds=OUTAGE_SECONDS)

    [(key, row)] = result["report"]["notifications"].items()
    *failed, success = result["report"]["attempts"]
    assert row["status"] == "delivered"
    assert failed, "tried while the receiver was down"
    assert all(a["status_code"] is None and not a["delivered"] for a in failed), failed
    assert success["delivered"]
    assert [(r.key, r.status) for r in result["received"]] == [(key, 200)], "one send once it was back"
    assert result["recovered_after"] <= result["next_try_after_return"] + 10, "the next scheduled try, no later"


def test_killing_the_worker_three_times_during_a_burst_loses_nothing(installed, receiver):
    """200 notifications in CI (1,000 in bench/alerts_faults.py), fired at once; the worker that delivers
    them SIGKILLed three times while it is busy with them.

    Every key arrives at least once. A key can arrive twice only if a worker was
    killed after sending it and before recording that: its attempt stays orphaned
    (no outcome) and the sweeper sends the row again once its lease is over. A
    worker holds at most one row per prefork child at a time, so duplicates are
    at most the orphaned attempts, which are at most 2 children x 3 kills. Each
    kill is made by the receiver while a request waits for its answer, so at
    least that one key per kill is sent again.
    """
    with hard_timeout(150, "kill burst"):
        result = scenarios.kill_burst(installed, receiver, count=BURST, kills=KILLS)

    notifications, received = result["report"]["notifications"], result["received"]
    assert len(notifications) == BURST
    assert {row["status"] for row in notifications.values()} == {"delivered"}
    assert set(received) == set(notifications), "every idempotency key arrived"
    duplicated = {key: times - 1 for key, times in received.items() if times > 1}
    orphaned = [a["key"] for a in result["report"]["attempts"] if a["orphaned"]]
    assert set(duplicated) <= set(orphaned), "only a send cut off by a kill is repeated"
    assert sum(duplicated.values()) <= len(orphaned) <= result["in_flight_bound"], (duplicated, orphaned)
    assert {kill["cut_off"] for kill in result["kills"]} <= set(duplicated), "a send cut off is sent again"
    assert all(kill["keys_received"] < BURST for kill in result["kills"]), "each kill was during the burst"


def test_a_crash_between_commit_and_dispatch_is_delivered_by_the_sweeper(installed, receiver):
    """The producer commits 5 notifications and is SIGKILLed before it can queue their task."""
    with hard_timeout(60, "crash before dispatch"):
        result = scenarios.crash_before_dispatch(installed, receiver, count=5)

    assert result["exit_code"] == -signal.SIGKILL
    notifications = result["report"]["notifications"]
    assert len(notifications) == 5
    assert {(row["status"], row["attempts"]) for row in notifications.values()} == {("delivered", 1)}
    assert result["received"] == dict.fromkeys(notifications, 1)
