"""The metrics collector's tick cost with N web processes reporting, and the HTTP middleware's cost per request.

1. Tick: services.collect_and_store() (every collector, consuming the processes'
   reports, one transaction of samples, last values and rollups, the broadcast),
   with N simulated web processes: N reporters (apps.metrics.reporting.Reporter,
   each with its own pid, key and traffic record of 20 views) that, before each
   tick, record 200 requests with random latencies and write their report (not
   counted in the tick). CPU ms (the process's, time.process_time) and wall ms per
   tick, over --ticks ticks after 3 of warm-up, for N in --processes. Run in the
   embedded mode (SQLite in a temporary var dir) and in production mode (a scratch
   PostgreSQL database, Redis database 1: the store helper's). The **baseline**,
   in the same process, turn about with the ticks: a bare psutil read of the
   same machine figures (CPU times total and per core, memory, swap, disk use,
   disk and network counters, load average), stored nowhere.
2. Middleware: HttpMetricsMiddleware around a plain view that returns a
   prebuilt response, called directly with a resolved request, against the
   **baseline** of the plain view alone: the difference is what the middleware
   adds per request (clock reads, bucket, lock, counters). Best of 5 rounds of
   --requests calls each.

Run on demand, never by the tests:  .venv/bin/python -m bench.metrics_collect [--ticks 30] [--json]
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # also runs as `python bench/metrics_collect.py`

from bench.common import django_json, figures, machine, migrate, portal_env, postgres_env, progress, scratch_postgres

REDIS_DB = 1
TICK = """
import json, random, time
import psutil
from django.conf import settings
from apps.metrics import reporting, services
from apps.metrics.collectors.system import disk_paths
from apps.metrics.traffic import Traffic

random.seed(7)
VIEWS = [f"view-{{n}}" for n in range(20)]


def bare_psutil() -> None:
    psutil.cpu_times(); psutil.cpu_times(percpu=True); psutil.virtual_memory(); psutil.swap_memory()
    for path in disk_paths():
        psutil.disk_usage(path)
    psutil.disk_io_counters(); psutil.net_io_counters(); psutil.getloadavg()


def timed(action) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    action()
    return (time.process_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000


result = {{}}
for processes in {processes}:
    reporters = [reporting.Reporter(role="web", pid=100000 + n, source=Traffic()) for n in range(processes)]
    runs = {{"tick_cpu": [], "tick_wall": [], "base_cpu": [], "base_wall": [], "series": 0}}
    for n in range(3 + {ticks}):
        for reporter in reporters:
            for _ in range(200):
                reporter.traffic.record(random.choice(VIEWS), random.choice([200] * 18 + [404, 500]),
                                        random.lognormvariate(-4, 1))
            reporter.report()
        cpu, wall = timed(lambda: runs.__setitem__("series", len(services.collect_and_store().values)))
        base_cpu, base_wall = timed(bare_psutil)
        if n >= 3:
            runs["tick_cpu"].append(cpu); runs["tick_wall"].append(wall)
            runs["base_cpu"].append(base_cpu); runs["base_wall"].append(base_wall)
        time.sleep(0.2)
    result[processes] = runs
print(json.dumps({{"vendor": __import__("django.db").db.connection.vendor, "runs": result}}))
"""
MIDDLEWARE = """
import json, time
from django.http import HttpResponse
from django.test import RequestFactory, override_settings
from django.urls import resolve
from apps.metrics.middleware import HttpMetricsMiddleware
from apps.metrics.traffic import traffic

response = HttpResponse("ok")
plain = lambda request: response
wrapped = HttpMetricsMiddleware(plain)
request = RequestFactory().get("/admin/login/")
request.resolver_match = resolve("/admin/login/")


def per_call(handler) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range({requests}):
            handler(request)
        best = min(best, (time.perf_counter() - started) / {requests})
    return best * 1e6


with override_settings(METRICS_REPORT_IN_BACKGROUND=False):  # no reporter thread writing during the rounds
    wrapped(request)  # the first request: the reporter's (skipped) start; after it, a flag test per request
    plain_us, wrapped_us = per_call(plain), per_call(wrapped)
print(json.dumps({{"plain_us": plain_us, "middleware_us": wrapped_us, "added_us": wrapped_us - plain_us,
                   "counted": traffic.snapshot()["admin:login"][0]}}))
"""


def measure(ticks: int, processes: list[int], requests: int) -> dict:
    code = TICK.format(ticks=ticks, processes=processes)
    with tempfile.TemporaryDirectory(prefix="opsportal-metrics-bench-") as root:
        env = portal_env(Path(root) / "var", Path(root) / "log.json")
        migrate(env)
        progress(f"embedded (SQLite): {ticks} ticks for N = {processes} ...")
        embedded = django_json(code, env)
        progress(f"middleware: 5 x {requests} calls ...")
        middleware = django_json(MIDDLEWARE.format(requests=requests), env)
        with scratch_postgres("metrics") as url:
            production_env = {**env, **postgres_env(url, REDIS_DB)}
            migrate(production_env)
            progress(f"production (PostgreSQL + Redis {REDIS_DB}): {ticks} ticks for N = {processes} ...")
            production = django_json(code, production_env)
    return {"embedded": embedded, "production": production, "middleware": middleware}


def summarise(measured: dict) -> dict:
    modes = {}
    for mode in ("embedded", "production"):
        rows = {}
        for processes, runs in measured[mode]["runs"].items():
            rows[processes] = {
                "series": runs["series"],
                **{f"{key}_ms": {name: round(value, 2) for name, value in figures(runs[key]).items()}
                   for key in ("tick_cpu", "tick_wall", "base_cpu", "base_wall")},
            }  # fmt: skip
        modes[mode] = {"vendor": measured[mode]["vendor"], "processes": rows}
    middleware = {key: round(value, 3) for key, value in measured["middleware"].items()}
    return {"tick": modes, "middleware": middleware}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ticks", type=int, default=30, help="ticks measured per case (default 30)")
    parser.add_argument("--processes", default="1,4,16", help="numbers of web processes reporting (default 1,4,16)")
    parser.add_argument("--requests", type=int, default=100_000, help="middleware calls per round (default 100000)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args()
    try:
        processes = [int(n) for n in args.processes.split(",")]
    except ValueError:
        parser.error("--processes is a comma-separated list of whole numbers, e.g. 1,4,16")
    if args.ticks < 1 or args.requests < 1 or min(processes) < 1:
        parser.error("--ticks, --requests and every --processes count must be at least 1")

    result = summarise(measure(args.ticks, processes, args.requests))
    if args.json:
        print(
            json.dumps({"benchmark": "metrics_collect", "machine": machine(), "ticks": args.ticks, **result}, indent=2)
        )
        return
    print(f"collector tick, median (p90) over {args.ticks} ticks, ms:")
    titles = ["tick CPU", "tick wall", "psutil CPU", "psutil wall"]
    print(f"  {'mode':<11} {'N':>3} {'series':>6}  " + " ".join(f"{title:>15}" for title in titles))
    for mode, found in result["tick"].items():
        for processes, row in found["processes"].items():
            cells = [f"{row[key]['median']:>7.2f} ({row[key]['p90']:>5.2f})"
                     for key in ("tick_cpu_ms", "tick_wall_ms", "base_cpu_ms", "base_wall_ms")]  # fmt: skip
            print(f"  {mode:<11} {processes:>3} {row['series']:>6}  {cells[0]} {cells[1]}  {cells[2]} {cells[3]}")
    m = result["middleware"]
    print(f"middleware per request: {m['middleware_us']:.2f} µs, plain view {m['plain_us']:.2f} µs, "
          f"added {m['added_us']:.2f} µs")  # fmt: skip


if __name__ == "__main__":
    main()
