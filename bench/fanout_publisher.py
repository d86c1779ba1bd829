"""The fan-out benchmark's publisher: metrics/"sample" frames at a fixed rate (or back to back), from its own process.

--portal: through the portal's own `apps.core.broadcast.broadcast_on_commit("metrics",
"sample", data)` in a Django process configured by the environment (channels-redis,
as a Celery worker or the collector would publish). --baseline: the same data as a
frame stamped here with seq (Redis INCR) and ts, PUBLISHed on the baseline server's
Redis channel.

Each frame's values carry `bench.frame`, its number in this run, so that clients
can tell which frames they were due. The first --warmup frames are not measured.
Talks to the orchestrator on stdin/stdout: prints "ready" once set up, waits for a
line on stdin, prints "measuring" before the first measured frame and "done" after
the last, then waits a second so that frames queued in this process are sent.

    python -m bench.fanout_publisher --portal --rate 10 --warmup 20 --frames 150
"""

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

# What a collector tick carries (the contract's metric names), so frames have a realistic size (about 700 bytes).
SAMPLE = {
    "system.cpu.percent": 12.5,
    'system.cpu.core.percent{core="0"}': 10.0,
    'system.cpu.core.percent{core="1"}': 15.0,
    "system.memory.percent": 41.2,
    "system.swap.percent": 0.0,
    "system.disk.percent": 63.1,
    "system.disk.read.bytes_per_second": 1024.0,
    "system.disk.write.bytes_per_second": 65536.0,
    "system.net.recv.bytes_per_second": 20480.0,
    "system.net.sent.bytes_per_second": 40960.0,
    "system.load.1": 0.52,
    "http.requests.per_second": 35.5,
    "http.4xx.percent": 0.4,
    "http.5xx.percent": 0.0,
    "http.latency.p50.ms": 4.1,
    "http.latency.p95.ms": 18.7,
    "http.latency.p99.ms": 42.0,
    "celery.queue.depth": 0.0,
    "dashboard.clients": 1000.0,
    "db.query.ms": 0.8,
}


def portal_sender(window: float | None) -> Callable[[dict[str, Any]], None]:
    """broadcast_on_commit, in a Django process configured by the environment (outside a transaction: sent at once).

    window, if given, replaces the publisher thread's batching window (broadcast.WINDOW)
    in this process: a diagnostic, to see what the window adds to the latency.
    """
    import django

    django.setup()
    from apps.core import broadcast

    if window is not None:
        broadcast.WINDOW = window
    return lambda data: broadcast.broadcast_on_commit("metrics", "sample", data)


def baseline_sender(redis_url: str) -> Callable[[dict[str, Any]], None]:
    """A frame stamped as the contract says (seq by INCR across the deployment, ts the publish time), PUBLISHed."""
    import orjson
    import redis

    from bench.fanout_baseline import CHANNEL

    connection = redis.Redis.from_url(redis_url)
    channel = CHANNEL.format(topic="metrics")

    def send(data: dict[str, Any]) -> None:
        seq = connection.incr("bench:fanout:seq:metrics")
        frame = {"topic": "metrics", "type": "sample", "seq": seq, "ts": time.time(), "data": data}
        connection.publish(channel, orjson.dumps(frame))

    return send


def publish(send: Callable[[dict[str, Any]], None], rate: float, warmup: int, frames: int, pad: int) -> None:
    """warmup + frames frames, `rate` a second on a fixed schedule (0: back to back), the measured ones announced."""
    padding = {"bench.pad": "x" * pad} if pad else {}
    started = time.monotonic()
    for number in range(warmup + frames):
        if number == warmup:
            print("measuring", flush=True)
        if rate:
            time.sleep(max(0.0, started + number / rate - time.monotonic()))
        send({"at": time.time(), "values": {**SAMPLE, "bench.frame": number, **padding}})
    print("done", flush=True)
    time.sleep(1)  # the portal's publisher thread sends what is still queued


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--portal", action="store_true", help="publish with the portal's broadcast_on_commit")
    kind.add_argument("--baseline", metavar="REDIS_URL", help="publish to the baseline server through this Redis")
    parser.add_argument("--rate", type=float, default=10, help="frames per second; 0 sends them back to back")
    parser.add_argument("--warmup", type=int, default=0, help="frames sent before the measured ones")
    parser.add_argument("--frames", type=int, required=True, help="measured frames")
    parser.add_argument("--pad", type=int, default=0, help="bytes of padding added to every frame's values")
    parser.add_argument("--window", type=float, help="--portal: replace broadcast.WINDOW (seconds), a diagnostic")
    args = parser.parse_args()
    send = portal_sender(args.window) if args.portal else baseline_sender(args.baseline)
    print("ready", flush=True)
    sys.stdin.readline()
    publish(send, args.rate, args.warmup, args.frames, args.pad)


if __name__ == "__main__":
    main()
