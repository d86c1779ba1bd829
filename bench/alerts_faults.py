"""Alert delivery under faults, at full size: what tests/faults/test_alert_delivery.py runs reduced in CI.

The same scenarios (tests/faults/scenarios.py) on the same set-up (tests/faults/harness.py):
a scratch PostgreSQL database, a Redis database of its own, `celery -A opsportal
worker` (prefork, 2 children, acks_late) and `celery -A opsportal beat` ticking
every second, with ALERTS_LEASE_SECONDS=10 and ALERTS_DELIVERY_TIMEOUT_SECONDS=2;
alerts fired with services.alert_fire() to a webhook receiver on loopback.

- 500 then 200: attempts until delivered (must be 2).
- outage: the receiver refuses connections for --outage seconds (--full: 120) from
  before the alert fires; how long after its return the notification arrived, and
  when the backoff had scheduled the next try.
- kill burst: --burst alerts (--full: 1,000) fired at once while the worker is stopped,
  then delivered by a worker that is SIGKILLed (with its children) 3 times as it works
  through them, and restarted each time; keys delivered, duplicate sends (bound: 2
  children x 3 kills, each the orphaned attempt of a send cut off by a kill), and the
  time from the last kill until the last delivery.
- crash before dispatch: a producer commits 5 notifications and is SIGKILLed before
  queueing their task; how long until the sweeper had them delivered.

There is no baseline: these are correctness and recovery figures, not speeds.

Run on demand, never by the tests:
    .venv/bin/python -m bench.alerts_faults --full [--json]    # 1,000 notifications, a 2-minute outage
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # also runs as `python bench/alerts_faults.py`

from bench.common import POSTGRES_URL, REDIS_URL, machine, progress
from tests.faults import scenarios
from tests.faults.harness import Receiver, portal

REDIS_DB = 10
FULL = {"burst": 1000, "outage": 120.0}
REDUCED = {"burst": 200, "outage": 10.0}  # what CI runs


def run(burst: int, outage: float, root: Path) -> dict:
    receiver = Receiver()
    try:
        with portal(POSTGRES_URL, REDIS_URL, REDIS_DB, root) as site:
            site.start_beat()
            site.start_worker(wait=True)
            progress("500 then 200")
            retry = scenarios.retry_after_500(site, receiver)
            progress(f"outage: the receiver down for {outage:.0f} s")
            down = scenarios.outage(site, receiver, seconds=outage)
            progress(f"kill burst: {burst} notifications, the worker SIGKILLed 3 times")
            burst_result = scenarios.kill_burst(site, receiver, count=burst, kills=3, log=progress)
            progress("crash between commit and dispatch")
            crash = scenarios.crash_before_dispatch(site, receiver, count=5)
    finally:
        receiver.down()
    return summary(retry, down, burst_result, crash)


def summary(retry: dict, down: dict, burst: dict, crash: dict) -> dict:
    attempts = burst["report"]["attempts"]
    received = burst["received"]
    notifications = burst["report"]["notifications"]
    return {
        "retry_after_500": {"attempts": [a["status_code"] for a in retry["report"]["attempts"]]},
        "outage": {
            "down_seconds": down["down_seconds"],
            "attempts_while_down": len(down["report"]["attempts"]) - 1,
            "next_try_after_return": down["next_try_after_return"],
            "delivered_after_return": down["recovered_after"],
            "sends": len(down["received"]),
        },
        "kill_burst": {
            "notifications": len(notifications),
            "delivered": sum(1 for row in notifications.values() if row["status"] == "delivered"),
            "keys_received": len(received),
            "duplicate_sends": sum(received.values()) - len(received),
            "orphaned_attempts": sum(1 for a in attempts if a["orphaned"]),
            "bound": burst["in_flight_bound"],
            "kills_at_keys": [kill["keys_received"] for kill in burst["kills"]],
            "fired_seconds": burst["fired_seconds"],
            "seconds": burst["seconds"],
            "healed_after_last_kill": burst["healed_after_last_kill"],
        },
        "crash_before_dispatch": {
            "exit_code": crash["exit_code"],
            "delivered": sum(1 for row in crash["report"]["notifications"].values() if row["status"] == "delivered"),
            "sends": sum(crash["received"].values()),
            "healed_after": crash["healed_after"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="full size: 1,000 notifications, a 120 s outage")
    parser.add_argument("--burst", type=int, help="notifications in the kill burst (default: 200, --full 1000)")
    parser.add_argument("--outage", type=float, help="seconds the receiver is down (default: 10, --full 120)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a summary")
    args = parser.parse_args()
    sizes = FULL if args.full else REDUCED
    burst, outage = args.burst or sizes["burst"], args.outage or sizes["outage"]

    with tempfile.TemporaryDirectory(prefix="opsportal-alerts-faults-") as root:
        result = run(burst, outage, Path(root))
    if args.json:
        print(json.dumps({"benchmark": "alerts_faults", "machine": machine(), "result": result}, indent=2))
        return
    retry, down, kill, crash = (
        result[name] for name in ("retry_after_500", "outage", "kill_burst", "crash_before_dispatch")
    )
    print("Alert delivery under faults (PostgreSQL, Redis, a Celery worker and beat):")
    print(f"  500 then 200: attempts {retry['attempts']}")
    print(
        f"  outage {down['down_seconds']:.0f} s: {down['attempts_while_down']} tries while down;"
        f" next try was due {down['next_try_after_return']:.1f} s after the return, delivered"
        f" {down['delivered_after_return']:.1f} s after it, sent {down['sends']} time(s)"
    )
    print(
        f"  kill burst: {kill['keys_received']}/{kill['notifications']} keys received,"
        f" {kill['delivered']} delivered; duplicate sends {kill['duplicate_sends']}"
        f" (orphaned attempts {kill['orphaned_attempts']}, bound {kill['bound']});"
        f" kills at {kill['kills_at_keys']} keys; fired in {kill['fired_seconds']:.1f} s, all delivered"
        f" {kill['seconds']:.1f} s after that, {kill['healed_after_last_kill']:.1f} s after the last kill"
    )
    print(
        f"  crash before dispatch: producer exit {crash['exit_code']}, {crash['delivered']}/5 delivered"
        f" by the sweeper, {crash['sends']} sends, {crash['healed_after']:.1f} s after the crash"
    )


if __name__ == "__main__":
    main()
