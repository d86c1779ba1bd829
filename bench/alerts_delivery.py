"""Delivery throughput to a loopback webhook: notifications/s, next to plain HTTP POSTs from one process.

The portal runs as in production (tests/faults/harness.py): a scratch PostgreSQL
database, a Redis database of its own, a webhook channel (internal, no rate
limit) pointing at a receiver on loopback in this process. The notifications are
written the real way, by services.alert_fire() through a route with group_wait 0,
one per alert, with the task that would send each held back (producers.fire,
dispatch="none"), so the sending can be timed alone. Cases, in one run:

- worker: `celery -A opsportal worker` (prefork, 2 children, started and ready
  beforehand); one `delivery.sweep()` pass, repeated until it finds nothing more,
  queues the --count rows in tasks of 20; the time runs from the sweep's start to
  the last row's delivered_at.
- deliver(): another --count rows sent by delivery.deliver(ids) in one process,
  no Celery: claim, sign, POST, record, one row after another.
- baseline, keep-alive: the body the receiver got first, POSTed --count times from
  one process with one httpx.Client (one connection for all).
- baseline, a connection per POST: the same with a new client and connection for
  each POST, as the portal's outbound client does.

Every row must end delivered and every key arrive (a repeat would show as a duplicate).

Run on demand, never by the tests:
    .venv/bin/python -m bench.alerts_delivery [--count 2000] [--json]
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # also runs as `python bench/alerts_delivery.py`

from bench.common import POSTGRES_URL, REDIS_URL, machine, progress
from tests.faults.harness import Portal, Receiver, portal, wait_until

REDIS_DB = 10


def through_worker(site: Portal, receiver: Receiver, count: int) -> dict:
    site.call("route_to", name="worker", url=receiver.url("/worker"))
    site.call("fire", scenario="worker", count=count, dispatch="none")
    site.start_worker(wait=True)
    progress(f"worker: sweeping {count} notifications to the worker")
    swept = site.call("sweep_all")
    wait_until(lambda: site.statuses("worker")["delivered"] >= count, 600, f"{count} notifications delivered", 0.2)
    site.stop()
    [(last,)] = site.query(
        "SELECT extract(epoch FROM max(n.delivered_at)) FROM alerts_notification n"
        " JOIN alerts_notificationchannel c ON c.id = n.channel_id WHERE c.name = 'worker'"
    )
    return outcome(site, receiver, "worker", count, float(last) - swept["started"])


def in_one_process(site: Portal, receiver: Receiver, count: int) -> dict:
    site.call("route_to", name="inline", url=receiver.url("/inline"))
    site.call("fire", scenario="inline", count=count, dispatch="none")
    progress(f"deliver(): {count} notifications in one process")
    return outcome(site, receiver, "inline", count, site.call("deliver_here", scenario="inline")["seconds"])


def outcome(site: Portal, receiver: Receiver, channel: str, count: int, seconds: float) -> dict:
    keys = receiver.keys(f"/{channel}")
    return {
        "notifications": count,
        "seconds": seconds,
        "per_second": count / seconds,
        "delivered": site.statuses(channel)["delivered"],
        "keys_received": len(keys),
        "duplicates": sum(keys.values()) - len(keys),
    }


def plainly(site: Portal, receiver: Receiver, count: int, body: str, keep_alive: bool) -> dict:
    path = "/keep-alive" if keep_alive else "/connection-each"
    progress(f"baseline: {count} plain POSTs, {'one connection' if keep_alive else 'a connection each'}")
    seconds = site.call("post_plainly", url=receiver.url(path), body=body, count=count, keep_alive=keep_alive)[
        "seconds"
    ]
    return {
        "notifications": count,
        "seconds": seconds,
        "per_second": count / seconds,
        "keys_received": len(receiver.keys(path)),
    }


def measure(count: int, root: Path) -> dict:
    receiver = Receiver()
    try:
        with portal(POSTGRES_URL, REDIS_URL, REDIS_DB, root) as site:
            worker = through_worker(site, receiver, count)
            inline = in_one_process(site, receiver, count)
            body = receiver.requests("/worker")[0].body.decode()
            return {
                "worker": worker,
                "deliver": inline,
                "baseline_keep_alive": plainly(site, receiver, count, body, keep_alive=True),
                "baseline_connection_each": plainly(site, receiver, count, body, keep_alive=False),
                "body_bytes": len(body.encode()),
            }
    finally:
        receiver.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000, help="notifications per case (default: 2000)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a summary")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="opsportal-alerts-delivery-") as root:
        result = measure(args.count, Path(root))
    if args.json:
        print(json.dumps({"benchmark": "alerts_delivery", "machine": machine(), "result": result}, indent=2))
        return
    print(f"Notifications delivered to a loopback webhook, {args.count} per case ({result['body_bytes']} B bodies):")
    print(f"  {'case':<44} {'per second':>11} {'seconds':>8} {'delivered':>10} {'duplicates':>11}")
    rows = (
        ("worker", "Celery worker, 2 prefork children"),
        ("deliver", "delivery.deliver() in one process"),
        ("baseline_keep_alive", "baseline: httpx POSTs, one connection"),
        ("baseline_connection_each", "baseline: httpx POSTs, a connection each"),
    )
    for name, label in rows:
        r = result[name]
        delivered = f"{r.get('delivered', r['keys_received'])}/{r['notifications']}"
        print(
            f"  {label:<44} {r['per_second']:>11,.0f} {r['seconds']:>8.2f} {delivered:>10} {r.get('duplicates', 0):>11}"
        )


if __name__ == "__main__":
    main()
