"""Middleware overhead: latency of a trivial view with and without the portal's request middleware.

Two runportal servers (--no-worker) run at once, each with its own var dir and JSON
logs to its own file, and serve GET /bench/trivial (bench.urls):

- full: bench.settings_full, the portal's MIDDLEWARE as it is;
- bare: bench.settings_bare, the same less the Prometheus before/after, proxy,
  request context and django-structlog request middleware.

After a warm-up, the requests go sequentially over one keep-alive connection per
server, interleaved in blocks of 100 (full, bare, full, bare...) so that drift
hits both alike. The figure of merit is median(full) / median(bare); goal: < 1.25.
Each server's CPU time per request (user + system, from /proc) is reported too:
on a noisy machine it attributes cost more steadily than latency does.

--attribute adds two more servers, each the full stack less one layer
(bench.settings_no_metrics, bench.settings_no_request_log), to show what each costs.

Run on demand, never by the tests:
    .venv/bin/python -m bench.middleware_overhead [--requests 2000] [--attribute] [--json]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # also runs as `python bench/middleware_overhead.py`

import httpx
import psutil

from bench.common import figures, machine, portal_env, progress, runportal
from tests.services import Process, free_port

SETTINGS = {"full": "bench.settings_full", "bare": "bench.settings_bare"}
ATTRIBUTION = {"no-metrics": "bench.settings_no_metrics", "no-request-log": "bench.settings_no_request_log"}
URL_PATH = "/bench/trivial"
WARMUP = 200
BLOCK = 100
GOAL = 1.25


def start(name: str, settings: str, root: Path) -> tuple[Process, str]:
    port = free_port()
    (root / name).mkdir()
    env = portal_env(root / name / "var", root / f"{name}.log", DJANGO_SETTINGS_MODULE=settings)
    return Process(runportal(port, "--no-worker"), env=env, log=root / f"{name}.out"), f"http://127.0.0.1:{port}"


def timed_get(client: httpx.Client) -> float:
    """Milliseconds for one GET URL_PATH, response body read."""
    started = time.perf_counter()
    response = client.get(URL_PATH)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{client.base_url}{URL_PATH} answered {response.status_code}")
    return elapsed * 1000


def cpu_seconds(process: Process) -> float:
    times = psutil.Process(process.popen.pid).cpu_times()
    return times.user + times.system


def measure(
    requests: int, root: Path, settings: dict[str, str]
) -> tuple[dict[str, list[float]], dict[str, int], dict[str, float]]:
    servers = {name: start(name, module, root) for name, module in settings.items()}  # all start at once
    clients: dict[str, httpx.Client] = {}
    try:
        for name, (process, base_url) in servers.items():
            process.wait_for_http(base_url + URL_PATH)
            clients[name] = httpx.Client(base_url=base_url, timeout=10)
        # The portal's middleware shows in its headers: check each server runs the stack it should.
        for name, client in clients.items():
            if ("x-request-id" in client.get(URL_PATH).headers) == (name == "bare"):
                raise RuntimeError(f"the {name} server does not run the middleware it should")
        progress(f"warming up: {WARMUP} requests each")
        for client in clients.values():
            for _ in range(WARMUP):
                timed_get(client)
        lines_before = {name: log_lines(root / f"{name}.log") for name in settings}
        latencies: dict[str, list[float]] = {name: [] for name in settings}
        cpu = dict.fromkeys(settings, 0.0)
        for done in range(0, requests, BLOCK):
            for name, client in clients.items():
                before = cpu_seconds(servers[name][0])
                latencies[name].extend(timed_get(client) for _ in range(min(BLOCK, requests - done)))
                cpu[name] += cpu_seconds(servers[name][0]) - before
            if (done + BLOCK) % 500 == 0:
                progress(f"{done + BLOCK}/{requests} requests each")
        log_per_run = {name: log_lines(root / f"{name}.log") - lines_before[name] for name in settings}
        return latencies, log_per_run, cpu
    finally:
        for client in clients.values():
            client.close()
        for name, (process, _) in servers.items():
            if process.stop() != 0:
                progress(f"warning: the {name} server did not stop cleanly:\n{process.output}")


def log_lines(path: Path) -> int:
    return sum(1 for _ in path.open("rb")) if path.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per server (default 2000)")
    parser.add_argument("--attribute", action="store_true", help="also run the full stack less metrics / less log")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a summary")
    args = parser.parse_args()
    if args.requests < 2:
        parser.error("--requests must be at least 2")

    settings = {**SETTINGS, **(ATTRIBUTION if args.attribute else {})}
    with tempfile.TemporaryDirectory(prefix="opsportal-middleware-") as root:
        latencies, log_lines_written, cpu = measure(args.requests, Path(root), settings)
    servers = {}
    for name, values in latencies.items():
        summary = figures(values)
        servers[name] = {
            "settings": settings[name],
            **{f"{key}_ms": round(summary[key], 3) for key in ("median", "p90", "p99")},
            "cpu_ms_per_request": round(cpu[name] / args.requests * 1000, 3),
            "log_lines_per_request": round(log_lines_written[name] / args.requests, 2),
        }
    ratio = servers["full"]["median_ms"] / servers["bare"]["median_ms"]
    result = {
        "benchmark": "middleware_overhead",
        "machine": machine(),
        "requests": args.requests,
        "servers": servers,
        "ratio_of_medians": round(ratio, 3),
        "goal": GOAL,
        "goal_met": ratio < GOAL,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"GET {URL_PATH}, {args.requests} requests per server over keep-alive, interleaved in blocks of {BLOCK}:")
    print(f"  {'server':<14} {'median ms':>10} {'p90 ms':>8} {'p99 ms':>8} {'CPU ms/req':>11} {'log lines/req':>14}")
    for name, row in servers.items():
        print(
            f"  {name:<14} {row['median_ms']:>10.3f} {row['p90_ms']:>8.3f} {row['p99_ms']:>8.3f}"
            f" {row['cpu_ms_per_request']:>11.3f} {row['log_lines_per_request']:>14}"
        )
    verdict = "met" if ratio < GOAL else "NOT met"
    print(f"  ratio of medians full/bare: {ratio:.3f}x (goal < {GOAL}x: {verdict})")


if __name__ == "__main__":
    main()
