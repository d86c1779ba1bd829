"""One evaluation tick of 1,000 metric rules over raw samples on PostgreSQL (issue 7's goal: under 1 s).

Production mode: a scratch PostgreSQL database and Redis (database 2, the rules
helper's), migrated, audit triggers installed. It holds --series series with a
raw sample every --interval seconds for the last --hours (the default, 100
series over 24 h every 5 s, is 1.73 M samples: a full raw retention), and
--rules rules spread over the series, cycling through the aggregations (avg,
max, min, rate, p95, absent) and windows (1, 5 and 15 minutes), with `for` 0,
60 or 300 s; one rule in a hundred has a threshold its series crosses, so a few
rules are pending or firing, as on a real portal.

In one `manage.py shell` process, --ticks times each, taking turns:
- **tick**: rules_evaluate() as the scheduler calls it (rules, series, one query
  for every series' samples, reduce in Python, one bulk write of the states);
- **baseline**: the same samples query alone (the SQL the tick sends, fetched
  with a plain cursor: no rules or series read, nothing reduced, nothing
  written): the floor any design that reads the raw samples pays.
The first tick (the one that fires the alerts of the rules already over their
threshold) is reported apart.

Run on demand, never by the tests:  .venv/bin/python -m bench.metrics_rules [--rules 1000] [--series 100] [--json]
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # also runs as `python bench/metrics_rules.py`

from bench.common import POSTGRES_URL, REDIS_URL, figures, machine, progress
from tests.faults.harness import portal

REDIS_DB = 2
GOAL_S = 1.0
RUNS = """
import random, time
from datetime import timedelta
from django.db import connection
from django.utils import timezone
from apps.metrics import rules as rules_module
from apps.metrics.models import MetricRule, Sample, Series
from apps.metrics.rule_data import recent_samples

random.seed(7)
now = timezone.now()
MetricRule.objects.all().delete()  # the shipped defaults: measure the rules of this script only
series = Series.objects.bulk_create(
    Series(name=f"bench.series.{{n}}", last_at=now, last_value=50.0) for n in range({series})
)
steps = int({hours} * 3600 / {interval})
with connection.cursor() as cursor:
    with cursor.cursor.copy("COPY metrics_sample (series_id, at, value) FROM STDIN") as copy:
        for one in series:
            for step in range(steps, -1, -1):
                copy.write_row((one.pk, now - timedelta(seconds=step * {interval}), random.uniform(0, 100)))
with connection.cursor() as cursor:
    cursor.execute("ANALYZE metrics_sample")
samples = Sample.objects.count()

aggregations = ["avg", "max", "min", "rate", "p95", "absent"]
rules = []
for n in range({rules}):
    aggregation = aggregations[n % len(aggregations)]
    crossing = n % 100 == 0  # about 1 % of the rules have a threshold their series is past
    threshold = {{"absent": 3600.0, "rate": 1000.0}}.get(aggregation, 1000.0)
    if crossing:
        threshold = -1.0 if aggregation != "absent" else 0.0
    rules.append(MetricRule(
        name=f"bench-rule-{{n}}", series=series[n % len(series)].name, aggregation=aggregation,
        window_seconds=[60, 300, 900][n % 3], comparison=">", threshold=threshold,
        for_seconds=[0, 60, 300][(n // 3) % 3], severity="warning",
        summary="{{series}} at {{value:.1f}} (over {{threshold:g}} for {{window}})",
    ))
MetricRule.objects.bulk_create(rules)


def samples_query():
    # The SQL and parameters of the samples query the tick sends (apps.metrics.rule_data.recent_samples).
    loaded = list(MetricRule.objects.filter(enabled=True))
    longest = {{}}
    for rule in loaded:
        longest[rule.series] = max(longest.get(rule.series, 0), rule.window_seconds)
    by_window = {{}}
    for name, pk in Series.objects.filter(name__in=longest).values_list("name", "pk"):
        by_window.setdefault(longest[name], []).append(pk)
    return recent_samples(by_window, timezone.now()).query.sql_with_params()


first_started = time.perf_counter()
first = rules_module.rules_evaluate()
first_s = time.perf_counter() - first_started
sql, params = samples_query()
runs = {{"tick": [], "baseline": []}}
rows = 0
for n in range({ticks}):
    started = time.perf_counter()
    summary = rules_module.rules_evaluate()
    runs["tick"].append(time.perf_counter() - started)
    sql, params = samples_query()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = len(cursor.fetchall())
    runs["baseline"].append(time.perf_counter() - started)
print(json.dumps({{"samples": samples, "rows_read": rows, "first_s": first_s, "first": first,
                  "last": summary, "runs": runs}}))
"""


def measure(rules: int, series: int, hours: float, interval: int, ticks: int, root: Path) -> dict:
    with portal(POSTGRES_URL, REDIS_URL, REDIS_DB, root) as site:
        code = RUNS.format(rules=rules, series=series, hours=hours, interval=interval, ticks=ticks)
        progress(f"{series} series x {hours} h of samples, {rules} rules, {ticks} ticks in one manage.py shell ...")
        return site.shell(code, timeout=1800)


def summarise(measured: dict) -> dict:
    cases = {}
    for case, seconds in measured["runs"].items():
        cases[case] = {f"{name}_ms": round(value * 1000, 1) for name, value in figures(seconds).items()}
    return {
        "samples_stored": measured["samples"],
        "samples_read_per_tick": measured["rows_read"],
        "first_tick_ms": round(measured["first_s"] * 1000, 1),
        "first_tick": measured["first"],
        "steady_tick": measured["last"],
        "cases": cases,
        "goal_ms": GOAL_S * 1000,
        "goal_met": cases["tick"]["max_ms"] < GOAL_S * 1000 and measured["first_s"] < GOAL_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, default=1000, help="metric rules (default 1000)")
    parser.add_argument("--series", type=int, default=100, help="series the rules are spread over (default 100)")
    parser.add_argument("--hours", type=float, default=24.0, help="hours of raw samples stored (default 24)")
    parser.add_argument("--interval", type=int, default=5, help="seconds between samples (default 5)")
    parser.add_argument("--ticks", type=int, default=20, help="ticks timed, and as many baselines (default 20)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args()
    if min(args.rules, args.series, args.interval, args.ticks) < 1 or args.hours <= 0:
        parser.error("every count must be positive")

    with tempfile.TemporaryDirectory(prefix="opsportal-metrics-rules-") as root:
        result = summarise(measure(args.rules, args.series, args.hours, args.interval, args.ticks, Path(root)))
    if args.json:
        print(json.dumps({"benchmark": "metrics_rules", "machine": machine(), **vars(args), **result}, indent=2))
        return
    print(
        f"{args.rules} rules over {args.series} series; {result['samples_stored']:,} raw samples stored, "
        f"{result['samples_read_per_tick']:,} read per tick; {args.ticks} ticks (ms):"
    )
    print(f"  {'case':<44} {'min':>7} {'median':>7} {'p90':>7} {'max':>7}")
    labels = {"tick": "rules_evaluate() (steady tick)", "baseline": "baseline: the samples query alone"}
    for case, row in result["cases"].items():
        times = " ".join(f"{row[name]:>7.1f}" for name in ("min_ms", "median_ms", "p90_ms", "max_ms"))
        print(f"  {labels[case]:<44} {times}")
    first = f"{result['first_tick_ms']} ms {result['first_tick']}"
    print(f"  first tick (fires the rules already past their threshold): {first}")
    print(f"  steady tick: {result['steady_tick']}")
    verdict = "met" if result["goal_met"] else "NOT met"
    print(f"  goal: every tick < {result['goal_ms']:.0f} ms: {verdict}")


if __name__ == "__main__":
    main()
