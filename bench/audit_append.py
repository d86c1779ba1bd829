"""Audit append throughput: events/s with 1 and with 8 concurrent writers, on PostgreSQL and on SQLite.

Each case runs in `manage.py shell -c` against a fresh, migrated database (a
temporary var dir for SQLite, a scratch database for PostgreSQL):

- audit: tests/audit/writers.write_concurrently(threads, per_thread): each thread
  calls audit.record() in a transaction of its own, as requests and tasks do, and
  every commit seals the new event into the hash chain. Afterwards the events are
  counted and the chain verified: none may be lost, none left unsealed.
- baseline: bench/audit_baselines.write_plain_concurrently(): the same threads insert
  the same number of plain django_admin_log rows (LogEntry, the JSON as
  change_message), one transaction each, under bench.settings_audit_off: no
  record(), no chain, no sealing, no connection hook.

Goal: >= 1,000 events/s with 8 writers on PostgreSQL, none lost.

Run on demand, never by the tests:
    .venv/bin/python -m bench.audit_append [--runs 8x1000 1x2000] [--databases sqlite postgresql] [--json]
"""

import argparse
import json
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # also runs as `python bench/audit_append.py`

from bench.common import (
    count_by_count,
    django_json,
    machine,
    migrate,
    portal_env,
    postgres_env,
    progress,
    scratch_postgres,
)

GOAL = 1000  # events/s with GOAL_WRITERS writers on PostgreSQL
GOAL_WRITERS = 8
CASES = {
    "audit": ("opsportal.settings", "from tests.audit.writers import write_concurrently as run"),
    "baseline": ("bench.settings_audit_off", "from bench.audit_baselines import write_plain_concurrently as run"),
}


def run_case(case: str, database: str, threads: int, per_thread: int, root: Path) -> dict:
    """One case on a fresh database of its own."""
    settings, load = CASES[case]
    var = Path(tempfile.mkdtemp(dir=root))
    with ExitStack() as stack:
        extra = postgres_env(stack.enter_context(scratch_postgres("append")), 13) if database == "postgresql" else {}
        env = portal_env(var, var / "log.json", DJANGO_SETTINGS_MODULE=settings, LOG_LEVEL="WARNING", **extra)
        migrate(env)
        return django_json(f"import json; {load}; print(json.dumps(run({threads}, {per_thread})))", env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=count_by_count, nargs="+", default=[(8, 1000), (1, 2000)], metavar="TxN",
                        help="writer threads x events per thread (default: 8x1000 1x2000)")  # fmt: skip
    parser.add_argument("--databases", nargs="+", choices=["postgresql", "sqlite"], default=["postgresql", "sqlite"])
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a summary")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory(prefix="opsportal-audit-append-") as root:
        for database in args.databases:
            for threads, per_thread in args.runs:
                row: dict = {"database": database, "threads": threads, "per_thread": per_thread}
                for case in CASES:
                    progress(f"{database}: {case}, {threads} x {per_thread}")
                    row[case] = run_case(case, database, threads, per_thread, Path(root))
                results.append(row)
    goal_rows = [r for r in results if r["database"] == "postgresql" and r["threads"] == GOAL_WRITERS]
    goal_met = bool(goal_rows) and all(
        r["audit"]["events_per_second"] >= GOAL
        and r["audit"]["written"] == r["audit"]["expected"]
        and r["audit"]["unsealed"] == 0
        and r["audit"]["intact"]
        and not r["audit"]["errors"]
        for r in goal_rows
    )
    if args.json:
        print(json.dumps({"benchmark": "audit_append", "machine": machine(), "results": results,
                          "goal_events_per_second": GOAL, "goal_met": goal_met}, indent=2))  # fmt: skip
        return
    print("Audit events appended, each record() in its own transaction, vs plain LogEntry rows (baseline):")
    print(f"  {'database':<11} {'writers':>11} {'audit ev/s':>11} {'baseline ev/s':>14} {'ratio':>6}"
          f" {'written/expected':>17} {'unsealed':>9} {'intact':>7}")  # fmt: skip
    for r in results:
        audit, baseline = r["audit"], r["baseline"]
        print(
            f"  {r['database']:<11} {r['threads']:>4} x {r['per_thread']:<4}"
            f" {audit['events_per_second']:>11,.0f} {baseline['events_per_second']:>14,.0f}"
            f" {baseline['events_per_second'] / audit['events_per_second']:>5.2f}x"
            f" {audit['written']:>8}/{audit['expected']:<8} {audit['unsealed']:>9} {audit['intact']!s:>7}"
        )
        for case in CASES:
            if r[case]["errors"]:
                print(f"    {case} errors: {r[case]['errors']}")
            if case == "baseline" and r[case]["written"] != r[case]["expected"]:
                print(f"    baseline wrote {r[case]['written']} of {r[case]['expected']}")
    if goal_rows:
        verdict = "met" if goal_met else "NOT met"
        print(f"  goal >= {GOAL:,} events/s with {GOAL_WRITERS} writers on PostgreSQL, none lost: {verdict}")


if __name__ == "__main__":
    main()
