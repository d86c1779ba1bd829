"""An authenticated API read under load: GET /api/v1/alerts/?state=firing (50 firing alerts), 50 clients, under
the ASGI server runportal uses and under gunicorn (WSGI), each beside a bare Django JSON view, in one run.

The portal runs in production mode (tests/faults/harness.py): a scratch PostgreSQL
database (the connection pool per process), Redis (database 12) for the cache and
the rate limit's counts, JSON request logs to a file per server, bench.settings_full
(the portal's settings and middleware plus bench.urls). API_RATE_LIMIT_PER_MINUTE is
1,000,000,000 for the run: 50 clients of one token are far over any real limit, yet
every request is counted as in production (--no-rate-limit sets it to 0: no counting).
API_TOKEN_CACHE_SECONDS is the portal's default with Redis (60: a token looked up once a
minute per process, its epoch read every request) unless --token-cache-seconds says
otherwise (0: looked up every request).

Servers, all started at once and measured in turns:

- uvicorn: `manage.py runportal --no-worker`, as it serves (one process, uvloop,
  httptools, the whole Django chain in one thread);
- gunicorn: `gunicorn -c opsportal/gunicorn.conf.py` (as production runs it) with
  --workers gthread workers of --threads threads each (defaults: 2 x 4 on this 2-core
  machine; see GUNICORN below);
- gunicorn-fresh: the same with API_LIST_CACHE_SECONDS=0, so that every read of the list
  queries and writes out its page (the others send again the page they kept while no
  alert changes, as by default with Redis).

Cases: for each server,

- api: GET /api/v1/alerts/?state=firing with `Authorization: Bearer <read token>` of a
  superuser, answered with the 50 alerts (about 17 kB);

and for uvicorn and gunicorn,

- baseline: GET /bench/trivial, a plain view answering {"ok": true} through the same
  middleware: what any Django view costs on that server.

Load: wrk (Debian's `wrk`), --clients keep-alive connections from one thread, for
--seconds per case and round after a warm-up; the five cases take turns for
--rounds rounds so that drift hits them alike. Without wrk, bench/load.py (asyncio)
does the same. Reported: requests per second, latency p50 / p90 / p99 / max, the
server's CPU per request (from /proc, the gunicorn workers included) and the load
generator's CPU use. Goal for the API under the layout README recommends for
production: >= 2,000 req/s and p99 <= 20 ms.

Run on demand, never by the tests:
    .venv/bin/python -m bench.api_read [--clients 50] [--seconds 10] [--rounds 3] [--json]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # also runs as `python bench/api_read.py`

import httpx

from bench.common import (
    POSTGRES_URL,
    REDIS_URL,
    case_figures,
    cpu_seconds,
    figures,
    gunicorn,
    load_parser,
    print_cases,
    progress,
    runportal,
)
from bench.load import hammer, request_bytes
from tests.faults.harness import portal
from tests.services import Process, free_port

REDIS_DB = 12
ALERTS = 50
API = "/api/v1/alerts/?state=firing"
BASELINE = "/bench/trivial"
GOAL_PER_SECOND, GOAL_P99_MS = 2000, 20.0
PERCENTILES = ("p50", "p90", "p99", "max")
# A worker per core keeps both cores busy with Python; threads overlap each worker's waits on PostgreSQL and
# Redis (a third of a request here) and keep the 50 clients' connections open (sync workers close each one).
GUNICORN = {"workers": 2, "threads": 4}
SERVERS = ("uvicorn", "gunicorn", "gunicorn-fresh")
BASELINE_OF = {"uvicorn": "uvicorn", "gunicorn": "gunicorn", "gunicorn-fresh": "gunicorn"}  # the bare view's server
SEED = """
import json
from django.contrib.auth import get_user_model
from apps.alerts.services import alert_fire
from apps.hooks import tokens
user = get_user_model().objects.create_superuser("bench", "bench@example.org", "bench-password-12")
for number in range({alerts}):
    alert_fire(source="bench", key=f"check-{{number}}", severity=("warning", "error", "critical")[number % 3],
               summary=f"Check {{number}} failing", labels={{"team": "web", "host": f"web-{{number % 5}}"}},
               value=90.0 + number / 10)
_, token = tokens.token_create(user=user, name="bench", scope="read")
print(json.dumps(token))
"""
# wrk's summary as one JSON line (latencies in microseconds).
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %d, "microseconds": %d, "errors": %d, "non_2xx": %d,'
    .. ' "p50": %d, "p90": %d, "p99": %d, "max": %d}\\n', summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


@dataclass
class Run:
    requests: int
    seconds: float
    errors: int
    latency_ms: dict[str, float]
    client_cpu: float
    server_cpu: float = 0.0

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def wrk(port: int, path: str, headers: dict[str, str], clients: int, seconds: float, script: Path) -> Run:
    command = ["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(script)]
    command += [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
    before, started = os.times(), time.perf_counter()
    child = subprocess.run([*command, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True)
    after, elapsed = os.times(), time.perf_counter() - started
    cpu = after.children_user - before.children_user + after.children_system - before.children_system
    summary = json.loads(child.stdout.strip().splitlines()[-1])
    latency = {name: summary[name] / 1000 for name in PERCENTILES}
    errors = summary["errors"] + summary["non_2xx"]
    return Run(summary["requests"], summary["microseconds"] / 1e6, errors, latency, cpu / elapsed)


def python_load(port: int, path: str, headers: dict[str, str], clients: int, seconds: float, script: Path) -> Run:
    request = request_bytes(path, f"127.0.0.1:{port}", headers)
    load = hammer("127.0.0.1", port, request, clients=clients, seconds=seconds)
    latency = figures(load.latencies_ms)
    return Run(load.requests, load.seconds, load.errors, {"p50": latency["median"], **latency}, load.client_cpu)


def start_servers(env: dict[str, str], root: Path, workers: int, threads: int) -> dict[str, tuple[Process, int]]:
    ports = {name: free_port() for name in SERVERS}
    commands = {
        "uvicorn": (runportal(ports["uvicorn"], "--no-worker"), {}),
        "gunicorn": (gunicorn(ports["gunicorn"], workers, threads), {}),
        "gunicorn-fresh": (gunicorn(ports["gunicorn-fresh"], workers, threads), {"API_LIST_CACHE_SECONDS": "0"}),
    }
    servers = {}
    for name, (command, settings) in commands.items():
        server_env = {**env, **settings, "LOG_FILE": str(root / f"{name}.log")}
        servers[name] = (Process(command, env=server_env, log=root / f"{name}.out"), ports[name])
    return servers


def check_answers(port: int, token: str) -> int:
    """The API answers the 50 firing alerts and the baseline its JSON, else the figures mean nothing."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        answer = client.get(API, headers={"Authorization": f"Bearer {token}"})
        if answer.status_code != 200 or len(answer.json()["items"]) != ALERTS:
            raise RuntimeError(f"{API} answered {answer.status_code}: {answer.text[:300]}")
        if client.get(BASELINE).json() != {"ok": True}:
            raise RuntimeError(f"{BASELINE} did not answer its JSON")
        return len(answer.content)


def measure(args: argparse.Namespace, root: Path) -> tuple[dict[str, list[Run]], dict]:
    drive = wrk if shutil.which("wrk") and not args.python_load else python_load
    script = root / "report.lua"
    script.write_text(WRK_REPORT)
    with portal(POSTGRES_URL, REDIS_URL, REDIS_DB, root) as site:
        token = site.shell(SEED.format(alerts=ALERTS), timeout=300)
        limit = "0" if args.no_rate_limit else "1000000000"
        env = {**site.env, "DJANGO_SETTINGS_MODULE": "bench.settings_full", "LOG_FORMAT": "json",
               "LOG_CONSOLE": "false", "API_RATE_LIMIT_PER_MINUTE": limit,
               "API_TOKEN_CACHE_SECONDS": str(args.token_cache_seconds)}  # fmt: skip
        servers = start_servers(env, root, args.workers, args.threads)
        try:
            sizes = {}
            for name, (process, port) in servers.items():
                process.wait_for_http(f"http://127.0.0.1:{port}{BASELINE}")
                sizes[name] = check_answers(port, token)
            cases = {f"{name} {case}": (process, port, path, headers) for name, (process, port) in servers.items()
                     for case, path, headers in (("api", API, {"Authorization": f"Bearer {token}"}),
                                                 ("baseline", BASELINE, {}))
                     if case == "api" or BASELINE_OF[name] == name}  # fmt: skip
            for _, port, path, headers in cases.values():
                drive(port, path, headers, args.clients, args.warmup, script)
            runs: dict[str, list[Run]] = {case: [] for case in cases}
            for round_ in range(1, args.rounds + 1):
                for case, (process, port, path, headers) in cases.items():
                    before = cpu_seconds(process)
                    run = drive(port, path, headers, args.clients, args.seconds, script)
                    run.server_cpu = cpu_seconds(process) - before
                    runs[case].append(run)
                    progress(f"round {round_}/{args.rounds}: {case:<20} {run.per_second:8.0f}/s  "
                             f"p99 {run.latency_ms['p99']:7.2f} ms  errors {run.errors}")  # fmt: skip
        finally:
            for process, _ in servers.values():
                process.stop()
    setup = {"load_generator": "wrk" if drive is wrk else "bench/load.py", "api_body_bytes": sizes["uvicorn"],
             "gunicorn": f"{args.workers} x {'gthread' if args.threads > 1 else 'sync'}, {args.threads} threads",
             "rate_limit": "off" if args.no_rate_limit else "counted, never reached",
             "token_cache_seconds": args.token_cache_seconds}  # fmt: skip
    return runs, setup


def summarise(runs: dict[str, list[Run]]) -> dict[str, dict]:
    cases = {}
    for case, each in runs.items():
        # The worst round's percentiles: wrk gives percentiles, not samples to pool.
        latency = {name: max(run.latency_ms[name] for run in each) for name in PERCENTILES}
        cases[case] = case_figures(each, sum(run.server_cpu for run in each), latency)
    for server in SERVERS:
        api, baseline = cases[f"{server} api"], cases[f"{BASELINE_OF[server]} baseline"]
        api["throughput_over_baseline"] = round(api["per_second"] / baseline["per_second"], 3)
        api["goal_met"] = api["per_second"] >= GOAL_PER_SECOND and api["p99_ms"] <= GOAL_P99_MS and not api["errors"]
    return cases


def main() -> None:
    parser = load_parser(__doc__)
    parser.add_argument("--workers", type=int, default=GUNICORN["workers"], help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=GUNICORN["threads"],
                        help="threads per gunicorn worker; 1 means sync workers (default 4)")  # fmt: skip
    parser.add_argument("--no-rate-limit", action="store_true", help="API_RATE_LIMIT_PER_MINUTE=0: nothing counted")
    parser.add_argument("--token-cache-seconds", type=int, default=60, help="API_TOKEN_CACHE_SECONDS (default 60)")
    parser.add_argument("--python-load", action="store_true", help="bench/load.py instead of wrk")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args()
    if min(args.clients, args.rounds, args.workers, args.threads) < 1 or args.seconds <= 0 or args.warmup <= 0:
        parser.error("--clients, --rounds, --workers and --threads must be at least 1, --seconds and --warmup positive")
    if not 0 <= args.token_cache_seconds <= 300:
        parser.error("--token-cache-seconds must be from 0 to 300")

    with tempfile.TemporaryDirectory(prefix="opsportal-api-read-") as root:
        runs, setup = measure(args, Path(root))
    cases = summarise(runs)
    print_cases("api_read", args, setup, cases, PERCENTILES, width=20, errors=True)
    if args.json:
        return
    for server in SERVERS:
        row = cases[f"{server} api"]
        verdict = "met" if row["goal_met"] else "NOT met"
        print(f"  {server} api: {row['throughput_over_baseline']:.2f}x its baseline's throughput; "
              f">= {GOAL_PER_SECOND} req/s and p99 <= {GOAL_P99_MS:g} ms: {verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
