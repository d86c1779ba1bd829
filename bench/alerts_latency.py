"""From alert_fire() to a loopback webhook receiving it: p50 / p99 latency, alerts fired one at a time.

The portal runs as in production (tests/faults/harness.py): a scratch PostgreSQL
database, a Redis database of its own, `celery -A opsportal worker` (prefork, 2
children; no beat, so every notification goes by the task queued after its
commit, the path being measured). A webhook channel (internal) points at a
receiver on loopback in this process, through a route with group_wait 0: each
alert_fire() writes its notification in its own transaction and queues the task.

- alert_fire: a `manage.py shell` producer fires --alerts new alerts one at a time,
  --interval apart, noting time.time() just before each call; the receiver notes
  time.time() once it has read the request. Latency = arrival - call, so it
  includes alert_fire()'s own transaction, the broker, the worker's claim, the
  signed POST and the connection it opens. 10 alerts first warm up, not counted.
- baseline: the same producer process POSTs the notification body the receiver got
  first, --alerts times at the same interval, with httpx opening a connection per
  POST as the portal's client does; latency measured the same way.

Goal: p99 under 1 s.

Run on demand, never by the tests:
    .venv/bin/python -m bench.alerts_latency [--alerts 200] [--interval 0.1] [--json]
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # also runs as `python bench/alerts_latency.py`

from bench.common import POSTGRES_URL, REDIS_URL, figures, machine, progress
from tests.faults.harness import Receiver, portal, wait_until

GOAL_P99 = 1.0  # seconds
WARMUP = 10
STAGES = (
    ("claimed", "fire -> a worker claims it"),
    ("sending", "claim -> received"),
    ("call", "alert_fire()'s own length"),
)
REDIS_DB = 10


def arrivals(receiver: Receiver, path: str, key_of: str) -> dict[str, float]:
    """When each alert (or plain POST) first arrived, by its key."""
    first: dict[str, float] = {}
    for request in receiver.requests(path):
        key = json.loads(request.body)["data"]["alerts"][0]["key"] if key_of == "alert" else request.key
        first.setdefault(key, request.at)
    return first


def latencies(sent: list[dict], arrived: dict[str, float]) -> list[float]:
    return [(arrived[item["key"]] - item["at"]) * 1000 for item in sent]


def stages(fired: list[dict], receiver: Receiver, report: dict) -> dict[str, dict[str, float]]:
    """Where the time goes, per alert: from the call to a worker claiming the notification (DeliveryAttempt.at),
    from the claim to the arrival; and the length of the alert_fire() call itself, on-commit work included."""
    claimed = {attempt["key"]: attempt["at"] for attempt in report["attempts"]}
    arrival = {}
    for request in receiver.requests("/latency"):
        arrival.setdefault(json.loads(request.body)["data"]["alerts"][0]["key"], (request.key, request.at))
    parts: dict[str, list[float]] = {"claimed": [], "sending": [], "call": []}
    for item in fired:
        key, at = arrival[item["key"]]
        parts["claimed"].append((claimed[key] - item["at"]) * 1000)
        parts["sending"].append((at - claimed[key]) * 1000)
        parts["call"].append(item["took"] * 1000)
    return {name: figures(samples) for name, samples in parts.items()}


def measure(alerts: int, interval: float, root: Path) -> dict:
    receiver = Receiver()
    try:
        with portal(POSTGRES_URL, REDIS_URL, REDIS_DB, root) as site:
            site.call("route_to", name="latency", url=receiver.url("/latency"))
            site.start_worker(wait=True)
            progress(f"warm-up: {WARMUP} alerts")
            site.call("fire", scenario="latency", count=WARMUP, interval=interval)
            wait_until(lambda: len(arrivals(receiver, "/latency", "alert")) >= WARMUP, 60, "the warm-up alerts")
            progress(f"alert_fire: {alerts} alerts, {interval} s apart")
            fired = site.call("fire", scenario="latency", count=alerts, first=WARMUP, interval=interval)
            wait_until(lambda: len(arrivals(receiver, "/latency", "alert")) >= WARMUP + alerts, 120, "every alert")
            arrived = arrivals(receiver, "/latency", "alert")
            body = receiver.requests("/latency")[0].body.decode()
            progress(f"baseline: {alerts} plain POSTs, {interval} s apart")
            plain = site.call(
                "post_plainly", url=receiver.url("/plain"), body=body, count=alerts, interval=interval, keep_alive=False
            )
            statuses = site.statuses("latency")
            report = site.call("report", scenario="latency")
    finally:
        receiver.down()
    return {
        "alerts": alerts,
        "interval": interval,
        "alert_fire_ms": figures(latencies(fired, arrived)),
        "stages_ms": stages(fired, receiver, report),
        "baseline_ms": figures(latencies(plain["sent"], arrivals(receiver, "/plain", "key"))),
        "delivered": statuses["delivered"],
        "duplicates": len(receiver.requests("/latency")) - len(arrived),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=200, help="alerts measured (default: 200)")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between fires (default: 0.1)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a summary")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="opsportal-alerts-latency-") as root:
        result = measure(args.alerts, args.interval, Path(root))
    goal_met = result["alert_fire_ms"]["p99"] < GOAL_P99 * 1000 and result["delivered"] == WARMUP + args.alerts
    if args.json:
        print(
            json.dumps(
                {
                    "benchmark": "alerts_latency",
                    "machine": machine(),
                    "result": result,
                    "goal_p99_seconds": GOAL_P99,
                    "goal_met": goal_met,
                },
                indent=2,
            )
        )
        return
    print(f"From alert_fire() to the loopback receiver, {args.alerts} alerts {args.interval} s apart (ms):")
    print(f"  {'':<32} {'min':>8} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}")
    rows = [("alert_fire -> webhook", result["alert_fire_ms"])]
    rows += [(f"  {label}", result["stages_ms"][name]) for name, label in STAGES]
    rows += [("baseline: plain POST", result["baseline_ms"])]
    for label, f in rows:
        print(f"  {label:<32} {f['min']:>8.1f} {f['median']:>8.1f} {f['p90']:>8.1f} {f['p99']:>8.1f} {f['max']:>8.1f}")
    print(f"  delivered {result['delivered']} of {WARMUP + args.alerts}, duplicate sends {result['duplicates']}")
    print(f"  goal p99 < {GOAL_P99:.0f} s: {'met' if goal_met else 'NOT met'}")


if __name__ == "__main__":
    main()
