"""alert_fire throughput: alerts/s from 8 concurrent producers on PostgreSQL.

Each case runs against a fresh, migrated scratch database and a Redis database
of its own (the production mode: broadcasts go through Redis). The producers are
either threads of one `manage.py shell -c` process ("threads": the threads of a
web or worker process, under one interpreter lock) or as many `manage.py shell -c`
processes that begin at the same moment ("processes": a deployment's producers,
Celery worker children and web processes, each an interpreter of its own).

- alert_fire: each producer calls services.alert_fire() N times, each call in a
  transaction of its own. Three calls in four raise a new alert (a (source, key)
  of the producer's own); every fourth fires the previous key again (the update
  path: counted, not re-notified). A default route (group_wait 30 s, the
  default) with a webhook channel routes every new alert, so each fire routes,
  checks silences, writes the alert and its timeline, schedules its first
  notification (which no tick sends during the run) and broadcasts the change
  after the commit. Afterwards the alerts are counted: none may be missing, and
  their fire counts must add up to the calls.
- baseline: the same producers insert one plain Transition row (a timeline line
  of one alert) per call through the ORM, one transaction each.

The clock runs from the moment the producers are told to begin (threads: they
start together; processes: once every one has started Django and said it is
ready) to the last producer's end.

Goal: >= 500 alerts/s with 8 producers on PostgreSQL.

Run on demand, never by the tests:
    .venv/bin/python -m bench.alerts_fire [--runs 8x500 1x1000] [--modes threads processes] [--json]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # also runs as `python bench/alerts_fire.py`

from bench.common import POSTGRES_URL, REDIS_URL, count_by_count, machine, progress
from tests.faults.harness import Portal, portal
from tests.services import ROOT

GOAL = 500  # alerts/s with GOAL_PRODUCERS producers on PostgreSQL
GOAL_PRODUCERS = 8
REDIS_DB = 10
CASES = ("alert_fire", "baseline")
MODES = ("threads", "processes")


# ---------------------------------------------------------------- in the portal's processes


def call(case: str, producer: int, n: int) -> None:
    """One producer's n-th call of the case."""
    if case == "alert_fire":
        from apps.alerts import services

        key = f"p{producer}-{n - 1 if n % 4 == 3 else n}"
        services.alert_fire(
            source="bench",
            key=key,
            severity="error",
            summary=f"{key} is failing",
            labels={"service": f"svc-{producer}", "n": str(n)},
        )
    else:
        from django.utils import timezone

        from apps.alerts.models import Transition

        Transition.objects.create(
            alert_id=_BASELINE_ID[0],
            episode=1,
            kind="fired",
            at=timezone.now(),
            details={"severity": "error", "labels": {"service": f"svc-{producer}", "n": str(n)}},
        )


_BASELINE_ID: list[int] = []  # the baseline's alert, looked up once per process


def prepare(case: str) -> dict:
    """In the portal, before the producers: what the case needs in the database."""
    from django.utils import timezone

    from apps.alerts.models import Alert
    from tests.faults import producers

    if case == "alert_fire":
        producers.route_to(name="fire", url="http://127.0.0.1:9/never", group_wait=30, default=True)
    else:
        now = timezone.now()
        Alert.objects.create(
            source="bench", key="baseline", severity="error", summary="baseline", started_at=now, last_fired_at=now
        )
    return {}


def produce_in_threads(case: str, threads: int, per_thread: int) -> dict:
    """In the portal: `threads` threads started together, each making per_thread calls."""
    from tests.threads import in_threads

    _remember_baseline(case)
    started = time.time()
    errors = in_threads(threads, per_thread, lambda producer, n: call(case, producer, n))
    return {"started": started, "ended": time.time(), "errors": errors[:5]}


def produce_in_process(case: str, producer: int, calls: int, folder: str) -> dict:
    """In one of the producer processes: say it is ready, wait for the common start, then make the calls."""
    from django.db import transaction

    _remember_baseline(case)
    (Path(folder) / f"ready-{producer}").touch()
    go = Path(folder) / "go"
    while not go.exists():
        time.sleep(0.01)
    errors = []
    for n in range(calls):
        try:
            with transaction.atomic():
                call(case, producer, n)
        except Exception as exc:
            errors.append(repr(exc))
    return {"started": float(go.read_text()), "ended": time.time(), "errors": errors[:5]}


def _remember_baseline(case: str) -> None:
    if case == "baseline":
        from apps.alerts.models import Alert

        _BASELINE_ID[:] = [Alert.objects.get(source="bench", key="baseline").pk]


def outcome(case: str) -> dict:
    """In the portal, afterwards: what the database holds."""
    from django.db.models import Sum

    from apps.alerts.models import Alert, Transition

    if case == "baseline":
        return {"rows": Transition.objects.filter(alert__key="baseline").count()}
    alerts = Alert.objects.filter(source="bench")
    return {"alerts": alerts.count(), "fire_count": alerts.aggregate(total=Sum("fire_count"))["total"] or 0}


# ---------------------------------------------------------------- the orchestration


def run_case(case: str, mode: str, producers: int, per_producer: int, root: Path) -> dict:
    """One case on a scratch database of its own."""
    with portal(POSTGRES_URL, REDIS_URL, REDIS_DB, Path(tempfile.mkdtemp(dir=root))) as site:
        site.shell(_code(f"prepare({case!r})"))
        if mode == "threads":
            runs = [site.shell(_code(f"produce_in_threads({case!r}, {producers}, {per_producer})"))]
        else:
            runs = in_processes(site, case, producers, per_producer)
        result = site.shell(_code(f"outcome({case!r})"))
    calls = producers * per_producer
    seconds = max(run["ended"] for run in runs) - min(run["started"] for run in runs)
    result.update(
        calls=calls,
        seconds=seconds,
        per_second=calls / seconds,
        errors=[error for run in runs for error in run["errors"]][:5],
        expected_alerts=producers * sum(1 for n in range(per_producer) if n % 4 != 3),
    )
    return result


def in_processes(site: Portal, case: str, producers: int, per_producer: int) -> list[dict]:
    """`producers` shell processes, told to begin at the same moment once all of them are ready."""
    folder = Path(tempfile.mkdtemp(dir=site.folder))
    running = [
        subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "shell",
                "-c",
                "import json; " + _code(f"produce_in_process({case!r}, {producer}, {per_producer}, {str(folder)!r})"),
            ],
            cwd=ROOT,
            env=site.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for producer in range(producers)
    ]
    deadline = time.monotonic() + 300
    while len(list(folder.glob("ready-*"))) < producers:
        if time.monotonic() > deadline or any(process.poll() is not None for process in running):
            raise AssertionError("the producer processes did not all get ready")
        time.sleep(0.05)
    (folder / "go.new").write_text(repr(time.time()))
    (folder / "go.new").rename(folder / "go")  # whole, at once
    runs = []
    for process in running:
        out, err = process.communicate(timeout=3600)
        if process.returncode != 0:
            raise AssertionError(f"a producer failed ({process.returncode}):\n{err[-3000:]}")
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return runs


def _code(expression: str) -> str:
    return f"from bench import alerts_fire as bench; print(json.dumps(bench.{expression}))"


def complete(fire: dict) -> bool:
    return not fire["errors"] and fire["alerts"] == fire["expected_alerts"] and fire["fire_count"] == fire["calls"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--runs",
        type=count_by_count,
        nargs="+",
        default=[(8, 500), (1, 1000)],
        metavar="PxN",
        help="producers x calls per producer (default: 8x500 1x1000)",
    )
    parser.add_argument(
        "--modes", nargs="+", choices=MODES, default=list(MODES), help="producers as threads, processes or both"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a summary")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory(prefix="opsportal-alerts-fire-") as root:
        for mode in args.modes:
            for producers, per_producer in args.runs:
                row: dict = {"mode": mode, "producers": producers, "per_producer": per_producer}
                for case in CASES:
                    progress(f"{case}: {producers} x {per_producer} in {mode}")
                    row[case] = run_case(case, mode, producers, per_producer, Path(root))
                results.append(row)
    goal_rows = [r for r in results if r["producers"] == GOAL_PRODUCERS]
    verdicts = {r["mode"]: r["alert_fire"]["per_second"] >= GOAL and complete(r["alert_fire"]) for r in goal_rows}
    if args.json:
        report = {"benchmark": "alerts_fire", "machine": machine(), "results": results, "goal_alerts_per_second": GOAL}
        print(json.dumps({**report, "goal_met_by_mode": verdicts}, indent=2))
        return
    print("alert_fire() calls per second on PostgreSQL vs plain Transition inserts (baseline), same producers:")
    print(f"  {'mode':>9} {'producers':>12} {'alerts/s':>9} {'baseline/s':>11} {'ratio':>6} {'alerts/expected':>16}")
    for r in results:
        fire, baseline = r["alert_fire"], r["baseline"]
        print(
            f"  {r['mode']:>9} {r['producers']:>5} x {r['per_producer']:<4} {fire['per_second']:>9,.0f}"
            f" {baseline['per_second']:>11,.0f} {baseline['per_second'] / fire['per_second']:>5.2f}x"
            f" {fire['alerts']:>7}/{fire['expected_alerts']:<8} fired {fire['fire_count']}"
        )
        for case in CASES:
            if r[case]["errors"]:
                print(f"    {case} errors: {r[case]['errors']}")
    for mode, met in verdicts.items():
        print(
            f"  goal >= {GOAL} alerts/s, {GOAL_PRODUCERS} producers ({mode}), none lost: {'met' if met else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
