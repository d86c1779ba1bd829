"""A full health run with one hanging dependency: wall time of the scheduled run against the check timeout.

Production mode: a scratch PostgreSQL database and Redis (database 11), so every
built-in check runs (database, migrations, cache, Redis, channel layer, Celery
broker and workers, scheduler, disk, memory, CPU, process), plus two HTTP targets
on a loopback receiver of this script's (tests/receiver.py), both marked internal
with the default timeout (HEALTH_CHECK_TIMEOUT_SECONDS, 5 s):

- "answers": answered 200 at once;
- "hangs": the connection is accepted, the request read, and never answered.

No Celery worker runs, so the workers check waits out its ping (2 s) and is critical,
as it would be on a portal whose workers are gone.

In one `manage.py shell` process, --runs times each, taking turns: services.run_and_store()
(the scheduled run: the checks run concurrently, then results are stored, alerts
evaluated and the broadcast sent) with the hanging target enabled, and the
**baseline**, the same run with it disabled. Before each run the script waits until
no check of an earlier run is still running (the runner would otherwise join that
execution instead of starting a new one), as the 30 s schedule does.
Goal: the run with the hanging target takes at most the timeout + 10 % (5.5 s).

Run on demand, never by the tests:  .venv/bin/python -m bench.health_run [--runs 5] [--json]
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # also runs as `python bench/health_run.py`

from bench.common import POSTGRES_URL, REDIS_URL, figures, machine, progress
from tests.faults.harness import portal
from tests.receiver import Receiver

REDIS_DB = 11
GOAL_MARGIN = 0.10
RUNS = """
import time
from django.conf import settings
from apps.health import runner, services
from apps.health.models import HealthTarget

HealthTarget.objects.create(name="answers", url={answers!r}, is_internal=True, interval_seconds=5)
hanging = HealthTarget.objects.create(name="hangs", url={hangs!r}, is_internal=True, interval_seconds=5)
services.run_and_store()  # warm-up: connections, imports


def settle():
    while runner.in_flight():
        time.sleep(0.05)


runs = {{"hanging": [], "baseline": []}}
for n in range({runs}):
    for case, enabled in (("hanging", True), ("baseline", False)):
        HealthTarget.objects.filter(pk=hanging.pk).update(enabled=enabled)
        settle()
        started = time.perf_counter()
        results = services.run_and_store()
        seconds = time.perf_counter() - started
        runs[case].append({{"seconds": seconds, "checks": {{r.name: [r.status, round(r.latency_ms), r.message]
                                                            for r in results}}}})
print(json.dumps({{"timeout": settings.HEALTH_CHECK_TIMEOUT_SECONDS, "runs": runs}}))
"""


def measure(runs: int, root: Path) -> dict:
    with Receiver() as receiver, portal(POSTGRES_URL, REDIS_URL, REDIS_DB, root) as site:
        receiver.hang(path="/hangs")
        code = RUNS.format(answers=receiver.url("/answers"), hangs=receiver.url("/hangs"), runs=runs)
        progress(f"{runs} runs of each case in one manage.py shell ...")
        return site.shell(code, timeout=600)


def summarise(measured: dict) -> dict:
    timeout = measured["timeout"]
    cases = {}
    for case, runs in measured["runs"].items():
        seconds = [run["seconds"] for run in runs]
        cases[case] = {
            **{f"{name}_s": round(value, 3) for name, value in figures(seconds).items()},
            "samples_s": [round(value, 3) for value in seconds],
            "checks": len(runs[-1]["checks"]),
            "last_run": runs[-1]["checks"],
        }
    worst = cases["hanging"]["max_s"]
    return {
        "timeout_s": timeout,
        "goal_s": round(timeout * (1 + GOAL_MARGIN), 3),
        "goal_met": worst <= timeout * (1 + GOAL_MARGIN),
        "cases": cases,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of each case (default 5)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    with tempfile.TemporaryDirectory(prefix="opsportal-health-run-") as root:
        result = summarise(measure(args.runs, Path(root)))
    if args.json:
        print(json.dumps({"benchmark": "health_run", "machine": machine(), "runs": args.runs, **result}, indent=2))
        return
    print(f"services.run_and_store(), {args.runs} runs each (seconds); check timeout {result['timeout_s']} s:")
    print(f"  {'case':<36} {'min':>7} {'median':>7} {'max':>7}  checks")
    labels = {"hanging": "with the hanging target", "baseline": "baseline: the hanging target disabled"}
    for case, row in result["cases"].items():
        times = " ".join(f"{row[name]:>7.3f}" for name in ("min_s", "median_s", "max_s"))
        print(f"  {labels[case]:<36} {times}  {row['checks']}")
    print("  last run with the hanging target:")
    for name, (status, latency_ms, message) in result["cases"]["hanging"]["last_run"].items():
        print(f"    {name:<22} {status:<9} {latency_ms:>6} ms  {message}")
    verdict = "met" if result["goal_met"] else "NOT met"
    print(f"  slowest run {result['cases']['hanging']['max_s']:.3f} s; goal <= {result['goal_s']} s: {verdict}")


if __name__ == "__main__":
    main()
