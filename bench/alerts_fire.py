"""alert_fire throughput: alerts/s from 8 concurrent producers on PostgreSQL.

Each case runs in `manage.py shell -c` against a fresh, migrated scratch database
and a Redis database of its own (the production mode: broadcasts go through Redis):

- alert_fire: fire_concurrently(threads, per_thread): threads started together
  (tests/threads.in_threads: each call in a transaction of its own, which
  alert_fire's own becomes a savepoint of), each calling services.alert_fire()
  per_thread times. Three calls in four raise a new alert (a (source, key) of
  the thread's own); every fourth fires the previous key again (the update path:
  counted, not re-notified). A default route (group_wait 30 s, the default) with
  a webhook channel routes every new alert, so each fire routes, checks
  silences, writes the alert and its timeline, schedules its first notification
  (which no tick sends during the run) and broadcasts the change after the
  commit. Afterwards the alerts are counted: none may be missing, and their fire
  counts must add up to the calls.
- baseline: insert_concurrently(threads, per_thread): the same threads insert one
  plain Transition row (a timeline line of one alert) per call, one transaction
  each, through the ORM.

Goal: >= 500 alerts/s with 8 producers on PostgreSQL.

Run on demand, never by the tests:
    .venv/bin/python -m bench.alerts_fire [--runs 8x500 1x1000] [--json]
"""

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # also runs as `python bench/alerts_fire.py`

from bench.common import POSTGRES_URL, REDIS_URL, machine, progress
from tests.faults.harness import portal

GOAL = 500  # alerts/s with GOAL_PRODUCERS producers on PostgreSQL
GOAL_PRODUCERS = 8
REDIS_DB = 10
CASES = {"alert_fire": "fire_concurrently", "baseline": "insert_concurrently"}


def fire_concurrently(threads: int, per_thread: int) -> dict:
    """In the portal: threads x per_thread alert_fire() calls; time, errors and what the database holds after."""
    from django.db.models import Sum

    from apps.alerts import services
    from apps.alerts.models import Alert

    def call(thread: int, n: int) -> None:
        key = f"t{thread}-{n - 1 if n % 4 == 3 else n}"
        services.alert_fire(
            source="bench",
            key=key,
            severity="error",
            summary=f"{key} is failing",
            labels={"service": f"svc-{thread}", "n": str(n)},
        )

    result = _concurrently(threads, per_thread, call)
    alerts = Alert.objects.filter(source="bench")
    result["alerts"] = alerts.count()
    result["expected_alerts"] = threads * sum(1 for n in range(per_thread) if n % 4 != 3)
    result["fire_count"] = alerts.aggregate(total=Sum("fire_count"))["total"] or 0
    return result


def insert_concurrently(threads: int, per_thread: int) -> dict:
    """In the portal: the same threads, one plain Transition insert per call, one transaction each."""
    from django.utils import timezone

    from apps.alerts.models import Alert, Transition

    now = timezone.now()
    alert = Alert.objects.create(
        source="bench", key="baseline", severity="error", summary="baseline", started_at=now, last_fired_at=now
    )

    def call(thread: int, n: int) -> None:
        Transition.objects.create(
            alert=alert,
            episode=1,
            kind="fired",
            at=timezone.now(),
            details={"severity": "error", "labels": {"service": f"svc-{thread}", "n": str(n)}},
        )

    result = _concurrently(threads, per_thread, call)
    result["rows"] = Transition.objects.filter(alert=alert).count()
    return result


def _concurrently(threads: int, per_thread: int, call: Callable[[int, int], None]) -> dict:
    from tests.threads import in_threads

    started = time.perf_counter()
    errors = in_threads(threads, per_thread, call)
    seconds = time.perf_counter() - started
    calls = threads * per_thread
    return {"calls": calls, "seconds": seconds, "per_second": calls / seconds, "errors": errors[:5]}


def run_case(case: str, threads: int, per_thread: int, root: Path) -> dict:
    """One case on a scratch database of its own."""
    with portal(POSTGRES_URL, REDIS_URL, REDIS_DB, Path(tempfile.mkdtemp(dir=root))) as site:
        if case == "alert_fire":
            site.call("route_to", name="fire", url="http://127.0.0.1:9/never", group_wait=30, default=True)
        code = f"from bench.alerts_fire import {CASES[case]} as run; print(json.dumps(run({threads}, {per_thread})))"
        return site.shell(code)


def producers(text: str) -> tuple[int, int]:
    threads, _, per_thread = text.partition("x")
    if not (threads.isdigit() and per_thread.isdigit() and int(threads) > 0 and int(per_thread) > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not THREADSxCALLS, e.g. 8x500")
    return int(threads), int(per_thread)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--runs",
        type=producers,
        nargs="+",
        default=[(8, 500), (1, 1000)],
        metavar="TxN",
        help="producer threads x calls per thread (default: 8x500 1x1000)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a summary")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory(prefix="opsportal-alerts-fire-") as root:
        for threads, per_thread in args.runs:
            row: dict = {"threads": threads, "per_thread": per_thread}
            for case in CASES:
                progress(f"{case}: {threads} x {per_thread}")
                row[case] = run_case(case, threads, per_thread, Path(root))
            results.append(row)
    goal_rows = [r for r in results if r["threads"] == GOAL_PRODUCERS]
    goal_met = bool(goal_rows) and all(
        r["alert_fire"]["per_second"] >= GOAL and complete(r["alert_fire"]) for r in goal_rows
    )
    if args.json:
        print(
            json.dumps(
                {
                    "benchmark": "alerts_fire",
                    "machine": machine(),
                    "results": results,
                    "goal_alerts_per_second": GOAL,
                    "goal_met": goal_met,
                },
                indent=2,
            )
        )
        return
    print("alert_fire() calls per second on PostgreSQL vs plain Transition inserts (baseline), same threads:")
    print(f"  {'producers':>12} {'alerts/s':>9} {'baseline/s':>11} {'ratio':>6} {'alerts/expected':>16} {'fired':>7}")
    for r in results:
        fire, baseline = r["alert_fire"], r["baseline"]
        print(
            f"  {r['threads']:>5} x {r['per_thread']:<4} {fire['per_second']:>9,.0f} {baseline['per_second']:>11,.0f}"
            f" {baseline['per_second'] / fire['per_second']:>5.2f}x {fire['alerts']:>7}/{fire['expected_alerts']:<8}"
            f" {fire['fire_count']:>7}"
        )
        for case in CASES:
            if r[case]["errors"]:
                print(f"    {case} errors: {r[case]['errors']}")
    if goal_rows:
        verdict = "met" if goal_met else "NOT met"
        print(f"  goal >= {GOAL} alerts/s with {GOAL_PRODUCERS} producers on PostgreSQL, none lost: {verdict}")


def complete(fire: dict) -> bool:
    return not fire["errors"] and fire["alerts"] == fire["expected_alerts"] and fire["fire_count"] == fire["calls"]


if __name__ == "__main__":
    main()
