"""Health endpoints under load: /healthz and /health/ with 50 concurrent clients, beside bare views of the same JSON.

One `manage.py runportal --no-worker` (uvicorn, bench.settings_full: the portal's
settings and middleware plus bench.urls) in production mode: a scratch PostgreSQL
database with its connection pool, Redis (database 11) for the cache, JSON request
logs to a file. The scheduled run's service (services.run_and_store()) stores the
built-in checks' results first, so /health/ has every check's state to serve.

Cases, all on the same server:

- /healthz, answered by ProbeMiddleware ahead of the rest of the stack;
- baseline: GET /bench/healthz, a plain view returning the same JSON through the whole stack;
- /health/ with `Authorization: Bearer HEALTH_TOKEN` (the stored results: one query);
- baseline: GET /bench/health, a plain view returning the same JSON (read once, kept in memory).

Each case is driven by bench/load.py: --clients keep-alive connections, closed loop,
for --seconds, after a warm-up; the cases take turns for --rounds rounds so that
drift hits them alike. Reported: requests per second, latency percentiles, the
server's CPU per request (from /proc) and the load generator's own CPU use.
The figure of merit is each endpoint's throughput over its baseline's; goal: >= 0.8.

Run on demand, never by the tests:
    .venv/bin/python -m bench.health_endpoints [--clients 50] [--seconds 10] [--rounds 3] [--json]
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # also runs as `python bench/health_endpoints.py`

import httpx

from bench.common import (
    POSTGRES_URL,
    REDIS_URL,
    case_figures,
    cpu_seconds,
    figures,
    load_parser,
    print_cases,
    progress,
    runportal,
)
from bench.load import Load, hammer, request_bytes
from tests.faults.harness import portal
from tests.services import Process, free_port

REDIS_DB = 11
TOKEN = "bench-health-token-0123456789"
CASES = {
    "/healthz": ("/healthz", {}),
    "baseline: /bench/healthz": ("/bench/healthz", {}),
    "/health/ (token)": ("/health/", {"Authorization": f"Bearer {TOKEN}"}),
    "baseline: /bench/health": ("/bench/health", {}),
}
BASELINE_OF = {"/healthz": "baseline: /bench/healthz", "/health/ (token)": "baseline: /bench/health"}
GOAL = 0.8
STORE = "from apps.health import services; print(json.dumps(len(services.run_and_store())))"


def same_json(base: str) -> int:
    """Both pairs answer the same JSON (else the comparison means nothing); the /health/ body's size."""
    with httpx.Client(base_url=base, timeout=30) as client:
        for case, baseline in BASELINE_OF.items():
            path, headers = CASES[case]
            answer, expected = client.get(path, headers=headers), client.get(CASES[baseline][0])
            if answer.status_code != 200 or answer.json() != expected.json():
                raise RuntimeError(f"{path} ({answer.status_code}) and {CASES[baseline][0]} differ")
        return len(answer.content)


def measure(args: argparse.Namespace, root: Path) -> tuple[dict[str, list[tuple[Load, float]]], dict]:
    with portal(POSTGRES_URL, REDIS_URL, REDIS_DB, root) as site:
        checks = site.shell(STORE, timeout=120)
        port = free_port()
        env = {
            **site.env,
            "DJANGO_SETTINGS_MODULE": "bench.settings_full",
            "HEALTH_TOKEN": TOKEN,
            "LOG_FORMAT": "json",
            "LOG_CONSOLE": "false",
            "LOG_FILE": str(root / "portal.log"),
        }
        server = Process(runportal(port, "--no-worker"), env=env, log=root / "runportal.out")
        try:
            base = f"http://127.0.0.1:{port}"
            server.wait_for_http(f"{base}/healthz")
            size = same_json(base)
            host = f"127.0.0.1:{port}"
            requests = {case: request_bytes(path, host, headers) for case, (path, headers) in CASES.items()}
            for request in requests.values():
                hammer("127.0.0.1", port, request, clients=args.clients, seconds=args.warmup, record=False)
            samples: dict[str, list[tuple[Load, float]]] = {case: [] for case in CASES}
            for round_ in range(1, args.rounds + 1):
                for case, request in requests.items():
                    before = cpu_seconds(server)
                    load = hammer("127.0.0.1", port, request, clients=args.clients, seconds=args.seconds)
                    samples[case].append((load, cpu_seconds(server) - before))
                    progress(f"round {round_}/{args.rounds}: {case:<26} {load.per_second:8.0f}/s  errors {load.errors}")
        finally:
            server.stop()
    return samples, {"checks_stored": checks, "health_body_bytes": size}


def summarise(samples: dict[str, list[tuple[Load, float]]]) -> dict[str, dict]:
    cases = {}
    for case, runs in samples.items():
        loads = [load for load, _ in runs]
        latency = figures([ms for load in loads for ms in load.latencies_ms])
        cases[case] = case_figures(loads, sum(cpu for _, cpu in runs), latency)
    for case, baseline in BASELINE_OF.items():
        ratio = cases[case]["per_second"] / cases[baseline]["per_second"]
        cases[case]["throughput_over_baseline"] = round(ratio, 3)
        cases[case]["goal_met"] = ratio >= GOAL
    return cases


def main() -> None:
    parser = load_parser(__doc__)
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0 or args.rounds < 1 or args.warmup < 0:
        parser.error("--clients and --rounds must be at least 1, --seconds positive, --warmup not negative")

    with tempfile.TemporaryDirectory(prefix="opsportal-health-endpoints-") as root:
        samples, setup = measure(args, Path(root))
    cases = summarise(samples)
    print_cases("health_endpoints", args, setup, cases, ("median", "p90", "p99", "max"), width=26)
    if args.json:
        return
    for case in BASELINE_OF:
        row = cases[case]
        verdict = "met" if row["goal_met"] else "NOT met"
        print(f"  {case}: {row['throughput_over_baseline']:.2f}x its baseline's throughput (goal >= {GOAL}: {verdict})")


if __name__ == "__main__":
    main()
