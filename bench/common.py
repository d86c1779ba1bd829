"""What the benchmarks share: the machine they ran on, summary figures, the portal's environment, scratch databases."""

import argparse
import json
import os
import platform
import statistics
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg

from tests.services import ROOT, Process, manage, subprocess_env

ADMIN_PASSWORD = "bench-admin-password-1"  # a throwaway account in a temporary var dir
# This machine's services; scratch databases are created next to "postgres" and dropped afterwards.
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379"


def machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def figures(samples: list[float]) -> dict[str, float]:
    """min, median, p90, p99 and max of samples (p90/p99 need at least two)."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive") if len(samples) > 1 else samples * 99
    return {
        "min": min(samples),
        "median": statistics.median(samples),
        "p90": cuts[89],
        "p99": cuts[98],
        "max": max(samples),
    }


def load_parser(description: str) -> argparse.ArgumentParser:
    """The options of a benchmark whose load cases take turns; the caller adds its own, then --json (print_cases)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50, help="concurrent keep-alive connections (default 50)")
    parser.add_argument("--seconds", type=float, default=10, help="seconds per case and round (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the cases taking turns (default 3)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per case (default 3)")
    return parser


def case_figures(rounds: Sequence[Any], server_cpu: float, latency_ms: dict[str, float]) -> dict[str, Any]:
    """A load case's row over its rounds (each with requests, seconds, errors, per_second and client_cpu): the
    throughput, these latencies, the server's CPU per request (server_cpu: its seconds over all the rounds)."""
    requests = sum(run.requests for run in rounds)
    return {
        "requests": requests,
        "errors": sum(run.errors for run in rounds),
        "per_second": round(requests / sum(run.seconds for run in rounds), 1),
        "per_second_by_round": [round(run.per_second, 1) for run in rounds],
        **{f"{name}_ms": round(value, 2) for name, value in latency_ms.items()},
        "server_cpu_ms_per_request": round(1000 * server_cpu / requests, 3),
        "client_cpu": round(max(run.client_cpu for run in rounds), 2),
    }


def print_cases(
    benchmark: str, args: argparse.Namespace, setup: dict, cases: dict[str, dict], latencies: tuple[str, ...],
    *, width: int, errors: bool = False,
) -> None:  # fmt: skip
    """The load cases' results (case_figures rows) as JSON with --json; else the setup and a table, a row per case:
    req/s, these latencies (ms), the server's CPU per request, the client's CPU use and, if asked, the errors."""
    if args.json:
        result = {"benchmark": benchmark, "machine": machine(), "clients": args.clients, "seconds": args.seconds,
                  "rounds": args.rounds, **setup, "cases": cases}  # fmt: skip
        print(json.dumps(result, indent=2))
        return
    print(f"{args.clients} clients, {args.rounds} x {args.seconds:g} s per case; {setup}")
    columns = " ".join(f"{name:>8}" for name in ("req/s", *latencies))
    print(f"  {'case':<{width}} {columns} {'cpu ms/req':>10} {'client':>7}" + (" errors" if errors else ""))
    for case, row in cases.items():
        latency = " ".join(f"{row[f'{name}_ms']:>8.2f}" for name in latencies)
        print(
            f"  {case:<{width}} {row['per_second']:>8.0f} {latency} {row['server_cpu_ms_per_request']:>10.3f}"
            f" {row['client_cpu']:>7.2f}" + (f" {row['errors']}" if errors else "")
        )


def portal_env(var_dir: Path, log_file: Path, **overrides: str) -> dict[str, str]:
    """A runportal environment of its own: var dir, admin password, JSON logs to a file only."""
    return subprocess_env(
        OPSPORTAL_VAR_DIR=str(var_dir),
        OPSPORTAL_ADMIN_PASSWORD=ADMIN_PASSWORD,
        LOG_FORMAT="json",
        LOG_CONSOLE="false",
        LOG_FILE=str(log_file),
        **overrides,
    )


def runportal(port: int, *options: str) -> list[str]:
    return [sys.executable, "manage.py", "runportal", "--port", str(port), *options]


def count_by_count(text: str) -> tuple[int, int]:
    """An argparse type for "AxB" (e.g. 8x500: 8 producers of 500 calls each), both whole and positive."""
    first, _, second = text.partition("x")
    if not (first.isdigit() and second.isdigit() and int(first) > 0 and int(second) > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not COUNTxCOUNT, e.g. 8x500")
    return int(first), int(second)


def gunicorn(port: int, workers: int = 2, threads: int = 4) -> list[str]:
    """gunicorn with the production configuration (opsportal/gunicorn.conf.py), this run's address and size."""
    return [sys.executable, "-m", "gunicorn", "-c", "opsportal/gunicorn.conf.py",
            "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
            "--worker-class", "gthread" if threads > 1 else "sync"]  # fmt: skip


def cpu_seconds(process: Process) -> float:
    """The CPU time (user + system) a server process and its children (gunicorn's workers) have used so far."""
    root = psutil.Process(process.popen.pid)
    return sum(sum(each.cpu_times()[:2]) for each in [root, *root.children(recursive=True)])


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def scratch_postgres(label: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database named opsportal_bench_<label>_<random>, dropped afterwards."""
    name = f"opsportal_bench_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(POSTGRES_URL)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def named_postgres(name: str) -> str:
    """The URL of the PostgreSQL database `name`, created if it does not exist (kept between runs)."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(POSTGRES_URL)._replace(path=f"/{name}"))


def postgres_env(database_url: str, redis_db: int) -> dict[str, str]:
    """What switches a portal process to PostgreSQL and Redis (production mode needs SECRET_KEY)."""
    return {"DATABASE_URL": database_url, "REDIS_URL": f"{REDIS_URL}/{redis_db}", "SECRET_KEY": "b" * 60}


def django_json(code: str, env: dict[str, str], timeout: float = 3600) -> dict:
    """Run code in `manage.py shell -c` (the repository root on PYTHONPATH); its last stdout line, as JSON."""
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))}
    result = manage("shell", "-c", code, env=env, timeout=timeout)
    if result.returncode != 0 or not result.stdout.strip():
        raise RuntimeError(f"manage.py shell failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def migrate(env: dict[str, str]) -> None:
    result = manage("migrate", "-v0", env=env, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{result.stderr[-3000:]}")
