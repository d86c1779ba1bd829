"""The alert delivery faults, each run against a harness.Portal and a harness.Receiver; shared by
tests/faults/test_alert_delivery.py (reduced sizes) and bench/alerts_faults.py (full sizes).

Each returns what happened as data; the test asserts on it, the benchmark prints it.
Every wait has a deadline, so a fault that is not healed fails instead of hanging.
"""

import threading
import time
from collections.abc import Callable
from typing import Any

from tests.faults.harness import CONCURRENCY, Portal, Received, Receiver, wait_until

# After a fault the sweeper needs at most: a lease (10 s, harness.FAST) for a row held by a killed
# worker, a tick (1 s) to dispatch it, and a worker to take it; the rest is slack for a busy machine.
HEAL_SECONDS = 45


def _delivered(portal: Portal, channel: str, count: int, timeout: float) -> None:
    def done() -> bool:
        statuses = portal.statuses(channel)
        if statuses["dead"]:
            raise AssertionError(f"{statuses['dead']} notification(s) to {channel} are dead")
        return statuses["delivered"] >= count

    wait_until(done, timeout, f"{count} notification(s) to {channel} delivered", poll=0.1)


def retry_after_500(portal: Portal, receiver: Receiver) -> dict[str, Any]:
    """The receiver answers 500 to the first try of the notification, 200 after that."""
    path = "/retry"
    receiver.fail_first(path, 500)
    portal.call("route_to", name="retry", url=receiver.url(path))
    portal.call("fire", scenario="retry", count=1)
    _delivered(portal, "retry", 1, HEAL_SECONDS)
    return {"report": portal.call("report", scenario="retry"), "received": receiver.requests(path)}


def outage(portal: Portal, receiver: Receiver, *, seconds: float) -> dict[str, Any]:
    """The receiver is down (connections refused) from before the alert fires until `seconds` later.

    The notification is retried with backoff meanwhile; once the receiver is back
    it must be delivered at the first try scheduled after that (read from its row
    at that moment), which the sweeper dispatches on the next tick.
    """
    path = "/outage"
    portal.call("route_to", name="outage", url=receiver.url(path))
    receiver.down()
    went_down = time.time()
    try:
        portal.call("fire", scenario="outage", count=1)
        time.sleep(max(0.0, went_down + seconds - time.time()))
    finally:
        receiver.up()
    came_back = time.time()
    [(next_try,)] = portal.query(
        "SELECT extract(epoch FROM next_attempt_at) FROM alerts_notification n JOIN alerts_notificationchannel c"
        " ON c.id = n.channel_id WHERE c.name = 'outage'"
    )
    wait = max(0.0, float(next_try) - came_back)
    _delivered(portal, "outage", 1, wait + HEAL_SECONDS)
    report = portal.call("report", scenario="outage")
    [row] = report["notifications"].values()
    return {
        "report": report,
        "received": receiver.requests(path),
        "down_seconds": came_back - went_down,
        "next_try_after_return": wait,
        "recovered_after": row["delivered_at"] - came_back,
    }


def kill_burst(
    portal: Portal, receiver: Receiver, *, count: int, kills: int = 3, log: Callable[[str], None] = lambda message: None
) -> dict[str, Any]:
    """`count` alerts fired at once, delivered by a worker that is SIGKILLed `kills` times meanwhile.

    The alerts are fired while the worker is stopped, so their tasks wait in the
    broker and the worker, once started, is busy until all are sent. Each time
    another 1/(kills + 2) of the keys has arrived, the receiver SIGKILLs the
    worker with all its prefork children before it answers the request that
    made the count: that send is certainly cut off in flight (the other child's
    may be too). The worker is started again at once. Then all must be delivered.
    """
    path = "/burst"
    portal.call("route_to", name="burst", url=receiver.url(path))
    marks = [count * kill // (kills + 2) for kill in range(1, kills + 1)]
    killed_at: list[dict] = []
    armed, killed, one_at_a_time = threading.Event(), threading.Event(), threading.Lock()

    def kill_at_marks(request: Received) -> None:
        with one_at_a_time:
            if request.path != path or not armed.is_set() or len(receiver.keys(path)) < marks[len(killed_at)]:
                return
            armed.clear()
            portal.kill_worker()  # the worker is waiting for this request's answer
            killed_at.append({"at": time.time(), "keys_received": len(receiver.keys(path)), "cut_off": request.key})
            killed.set()

    portal.stop_worker()
    started = time.time()
    portal.call("fire", scenario="burst", count=count)
    fired = time.time()
    receiver.on_arrival = kill_at_marks
    try:
        for kill in range(1, kills + 1):
            killed.clear()
            armed.set()
            portal.start_worker()
            if not killed.wait(HEAL_SECONDS + count / 10):
                raise AssertionError(f"{marks[kill - 1]} of {count} keys did not arrive before kill {kill}")
            log(f"  kill {kill}: SIGKILLed the worker with {killed_at[-1]['keys_received']} of {count} keys received")
    finally:
        receiver.on_arrival = None
        armed.clear()
    portal.start_worker()
    _delivered(portal, "burst", count, HEAL_SECONDS + count / 10)
    report = portal.call("report", scenario="burst")
    last = max(row["delivered_at"] for row in report["notifications"].values())
    return {
        "report": report,
        "received": receiver.keys(path),
        "kills": killed_at,
        "in_flight_bound": CONCURRENCY * kills,
        "fired_seconds": fired - started,
        "seconds": last - fired,
        "healed_after_last_kill": last - killed_at[-1]["at"],
    }


def crash_before_dispatch(portal: Portal, receiver: Receiver, *, count: int) -> dict[str, Any]:
    """A producer commits `count` notifications and is SIGKILLed before it queues their task."""
    path = "/crash"
    portal.call("route_to", name="crash", url=receiver.url(path))
    producer = portal.start_call("fire", scenario="crash", count=count, dispatch="crash")
    exit_code = producer.wait(60)
    crashed = time.time()
    _delivered(portal, "crash", count, HEAL_SECONDS)
    report = portal.call("report", scenario="crash")
    last = max(row["delivered_at"] for row in report["notifications"].values())
    return {"report": report, "received": receiver.keys(path), "exit_code": exit_code, "healed_after": last - crashed}
