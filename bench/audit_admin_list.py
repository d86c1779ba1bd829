"""The audit admin's event list at 1,000,000 events: page times for each filter, vs the same pages at 1,000.

Steps, for each size, on a fresh migrated database of its own (a temporary var
dir for SQLite; with --postgres a scratch PostgreSQL database):

1. seed: the events, with bench/audit_verify's one-statement seed (unsealed: the
   list does not care), then ANALYZE;
2. in `manage.py shell -c`, a superuser and Django's test client GET each page of
   PAGES --repeat times (after one untimed warm-up); the median per page is the figure,
   along with the page's SQL statement count and whether any COUNT ran without LIMIT.

The baseline is the same pages over --baseline-events (default 1,000) events:
the ratio shows how the list scales with the size of the table.

Run on demand, never by the tests:
    .venv/bin/python -m bench.audit_admin_list [--events 1000000] [--postgres] [--json]
"""

import argparse
import json
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # also runs as `python bench/audit_admin_list.py`

import psycopg

from bench.audit_verify import seed
from bench.common import django_json, machine, migrate, portal_env, postgres_env, progress, scratch_postgres
from tests.services import ROOT

GOAL_MS = 200  # a page an operator waits for during an incident
LIST = "/admin/audit/auditevent/"
PAGES = {
    "newest first": "",
    "page 6": "?p=5",
    "action": "?action=auth.login",
    "outcome": "?outcome__exact=failure",
    "actor": "?actor=operator3",
    "resource": "?resource_type=auth.group&resource_id=42",
    "search actor": "?q=operator3",
    "search IP": "?q=10.0.7.8",
    "one day": "?timestamp__year=2026&timestamp__month=11&timestamp__day=1",
    "event page": "<first>/change/",
}
CODE = r"""
import json, statistics, time
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from apps.audit.models import AuditEvent

user = User.objects.create_superuser("bench-list", "b@example.org", "bench-list-password-1")
client = Client(HTTP_HOST="localhost")
client.force_login(user)
first = AuditEvent.objects.order_by("id").values_list("id", flat=True).first()
results = {}
for name, query in json.loads(%(pages)r).items():
    url = %(list)r + query.replace("<first>", str(first))
    warm = client.get(url)
    assert warm.status_code == 200, (url, warm.status_code, warm.get("Location"))
    times = []
    for _ in range(%(repeat)d):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    results[name] = {
        "median_ms": round(statistics.median(times), 2),
        "max_ms": round(max(times), 2),
        "queries": len(queries.captured_queries),
        "unbounded_counts": sum("LIMIT" not in sql.upper() for sql in counts),
    }
print(json.dumps(results))
"""


def measure(events: int, postgres: bool, repeat: int, root: Path) -> dict:
    with ExitStack() as stack:
        database_url = stack.enter_context(scratch_postgres("list")) if postgres else None
        var = root / f"var-{events}"
        env = portal_env(var, root / f"log-{events}.json", LOG_LEVEL="WARNING",
                         **(postgres_env(database_url, 13) if database_url else {}))  # fmt: skip
        env["PYTHONPATH"] = str(ROOT)
        migrate(env)
        progress(f"seeding {events:,} events")
        seed(events, var, database_url)
        if database_url:
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE audit_auditevent")
        progress(f"timing {len(PAGES)} pages x {repeat}")
        code = CODE % {"pages": json.dumps(PAGES), "list": LIST, "repeat": repeat}
        return django_json(code, env, timeout=3600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the table (default 1,000,000)")
    parser.add_argument("--baseline-events", type=int, default=1_000, help="events for the baseline (default 1,000)")
    parser.add_argument("--repeat", type=int, default=7, help="timed requests per page (default 7)")
    parser.add_argument("--postgres", action="store_true", help="a scratch PostgreSQL database instead of SQLite")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a summary")
    args = parser.parse_args()
    if min(args.events, args.baseline_events, args.repeat) < 1:
        parser.error("--events, --baseline-events and --repeat must be at least 1")

    with tempfile.TemporaryDirectory(prefix="opsportal-audit-list-") as root:
        big = measure(args.events, args.postgres, args.repeat, Path(root))
        small = measure(args.baseline_events, args.postgres, args.repeat, Path(root))
    database = "postgresql" if args.postgres else "sqlite"
    slowest = max(page["median_ms"] for page in big.values())
    goal_met = slowest < GOAL_MS and not any(page["unbounded_counts"] for page in big.values())
    if args.json:
        print(json.dumps({"benchmark": "audit_admin_list", "machine": machine(), "database": database,
                          "events": args.events, "baseline_events": args.baseline_events, "pages": big,
                          "baseline": small, "goal_ms": GOAL_MS, "goal_met": goal_met}, indent=2))  # fmt: skip
        return
    print(f"Audit admin list on {database}: median ms of {args.repeat} GETs per page")
    print(f"  {'page':<20} {f'{args.events:,} ev':>12} {f'{args.baseline_events:,} ev':>12} {'ratio':>6}"
          f" {'queries':>8} {'COUNT w/o LIMIT':>16}")  # fmt: skip
    for name, page in big.items():
        base = small[name]["median_ms"]
        print(f"  {name:<20} {page['median_ms']:>12.1f} {base:>12.1f} {page['median_ms'] / base:>5.1f}x"
              f" {page['queries']:>8} {page['unbounded_counts']:>16}")  # fmt: skip
    print(
        f"  goal: every page < {GOAL_MS} ms at {args.events:,} events, no unbounded COUNT: "
        f"{'met' if goal_met else 'NOT met'} (slowest {slowest:.1f} ms)"
    )


if __name__ == "__main__":
    main()
