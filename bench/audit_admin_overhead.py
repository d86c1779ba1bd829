"""Audit overhead on an admin change: POST /admin/auth/group/<id>/change/ with recording on and off.

Two runportal servers (--no-worker) run at once, each with its own var dir (SQLite)
or, with --postgres, its own scratch PostgreSQL database and Redis db:

- audit: bench.settings_full, the portal as it is: the capture trigger writes an
  admin.change event in the request's transaction, sealed into the chain after commit;
- off: bench.settings_audit_off, the same without apps.audit (no triggers, no
  connection hook, no sealing, no login throttle).

On each, the admin logs in, adds one group, then renames it with the admin's change
form: 50 warm-up POSTs, then --requests measured ones (each must answer 302),
sequential over one keep-alive connection per server, interleaved in blocks of 50.
The figure of merit is median(audit) / median(off); goal: < 1.2. Afterwards
`manage.py audit verify --json` must find the audit server's chain intact, with one
admin.change event per POST.

Run on demand, never by the tests:
    .venv/bin/python -m bench.audit_admin_overhead [--requests 500] [--postgres] [--json]
"""

import argparse
import json
import re
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # also runs as `python bench/audit_admin_overhead.py`

import httpx
import psutil

from bench.common import (
    ADMIN_PASSWORD,
    django_json,
    figures,
    machine,
    portal_env,
    postgres_env,
    progress,
    runportal,
    scratch_postgres,
)
from tests.services import Process, free_port, manage

SETTINGS = {"audit": "bench.settings_full", "off": "bench.settings_audit_off"}
REDIS_DBS = {"audit": 13, "off": 14}
WARMUP = 50
BLOCK = 50
GOAL = 1.2
COUNT_EVENTS = (
    "import json; from apps.audit.models import AuditEvent; "
    "changes = AuditEvent.objects.filter(action='admin.change'); "
    "print(json.dumps({'admin_change': changes.count(), "
    "'measured': changes.filter(resource_repr__startswith='group-').count()}))"
)


def csrf(client: httpx.Client) -> str:
    return client.cookies["csrftoken"]


def post(client: httpx.Client, path: str, data: dict[str, str]) -> httpx.Response:
    response = client.post(path, data={**data, "csrfmiddlewaretoken": csrf(client)})
    if response.status_code != 302:
        raise RuntimeError(f"POST {client.base_url}{path} answered {response.status_code}: {response.text[:500]}")
    return response


def prepare(client: httpx.Client) -> str:
    """Log in as the admin and add a group; returns the group's change URL."""
    client.get("/admin/login/").raise_for_status()
    post(client, "/admin/login/?next=/admin/", {"username": "admin", "password": ADMIN_PASSWORD, "next": "/admin/"})
    location = post(client, "/admin/auth/group/add/", {"name": "bench-group", "_continue": "1"}).headers["location"]
    match = re.search(r"/admin/auth/group/(\d+)/change/", location)
    if match is None:
        raise RuntimeError(f"adding a group redirected to {location}")
    return match.group(0)


def timed_change(client: httpx.Client, path: str, name: str) -> float:
    """Milliseconds for one admin change POST renaming the group, response read."""
    started = time.perf_counter()
    post(client, path, {"name": name})
    return (time.perf_counter() - started) * 1000


def cpu_seconds(process: Process) -> float:
    times = psutil.Process(process.popen.pid).cpu_times()
    return times.user + times.system


def measure(requests: int, envs: dict[str, dict[str, str]], root: Path) -> tuple[dict[str, list[float]], dict]:
    servers: dict[str, tuple[Process, str]] = {}
    for name, env in envs.items():  # all start at once
        port = free_port()
        servers[name] = Process(runportal(port, "--no-worker"), env=env, log=root / f"{name}.out"), f"127.0.0.1:{port}"
    clients: dict[str, httpx.Client] = {}
    paths: dict[str, str] = {}
    try:
        for name, (process, address) in servers.items():
            process.wait_for_http(f"http://{address}/admin/login/", timeout=180)
            clients[name] = httpx.Client(base_url=f"http://{address}", timeout=30)
            paths[name] = prepare(clients[name])
        progress(f"warming up: {WARMUP} changes each")
        for name, client in clients.items():
            for i in range(WARMUP):
                timed_change(client, paths[name], f"warmup-{i}")
        latencies: dict[str, list[float]] = {name: [] for name in servers}
        cpu = dict.fromkeys(servers, 0.0)
        for done in range(0, requests, BLOCK):
            for name, client in clients.items():
                before = cpu_seconds(servers[name][0])
                for i in range(done, min(done + BLOCK, requests)):
                    latencies[name].append(timed_change(client, paths[name], f"group-{i}"))
                cpu[name] += cpu_seconds(servers[name][0]) - before
            if (done + BLOCK) % 100 == 0:
                progress(f"{min(done + BLOCK, requests)}/{requests} changes each")
        return latencies, cpu
    finally:
        for client in clients.values():
            client.close()
        for name, (process, _) in servers.items():
            if process.stop() != 0:
                progress(f"warning: the {name} server did not stop cleanly:\n{process.output[-3000:]}")


def check_chain(env: dict[str, str]) -> dict:
    """The audit server's chain, verified after the run, and its admin.change events counted."""
    result = manage("audit", "verify", "--json", env=env, timeout=600)
    if result.returncode not in (0, 1):
        raise RuntimeError(f"audit verify failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return {"verify": json.loads(result.stdout), **django_json(COUNT_EVENTS, env)}


def run(requests: int, postgres: bool, root: Path) -> tuple[dict[str, list[float]], dict, dict]:
    with ExitStack() as stack:
        envs = {}
        for name, settings in SETTINGS.items():
            (root / name).mkdir()
            database = postgres_env(stack.enter_context(scratch_postgres(name)), REDIS_DBS[name]) if postgres else {}
            envs[name] = portal_env(
                root / name / "var", root / f"{name}.log", DJANGO_SETTINGS_MODULE=settings, **database
            )
        latencies, cpu = measure(requests, envs, root)
        progress("verifying the audit server's chain")
        return latencies, cpu, check_chain(envs["audit"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500, help="measured changes per server (default 500)")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL + Redis instead of SQLite")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a summary")
    args = parser.parse_args()
    if args.requests < 2:
        parser.error("--requests must be at least 2")

    with tempfile.TemporaryDirectory(prefix="opsportal-audit-admin-") as root:
        latencies, cpu, check = run(args.requests, args.postgres, Path(root))
    servers = {}
    for name, values in latencies.items():
        summary = figures(values)
        servers[name] = {
            "settings": SETTINGS[name],
            **{f"{key}_ms": round(summary[key], 3) for key in ("median", "p90", "p99")},
            "portal_cpu_ms_per_request": round(cpu[name] / args.requests * 1000, 3),
        }
    ratio = servers["audit"]["median_ms"] / servers["off"]["median_ms"]
    verify = check["verify"]
    chain_ok = (
        verify["intact"]
        and verify["unsealed"] == 0
        and check["measured"] == args.requests
        and check["admin_change"] == args.requests + WARMUP
    )
    result = {
        "benchmark": "audit_admin_overhead",
        "machine": machine(),
        "database": "postgresql" if args.postgres else "sqlite",
        "requests": args.requests,
        "warmup": WARMUP,
        "servers": servers,
        "ratio_of_medians": round(ratio, 3),
        "goal": GOAL,
        "goal_met": ratio < GOAL,
        "chain": {**check, "as_expected": chain_ok},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"POST /admin/auth/group/<id>/change/ on {result['database']}, {args.requests} changes per server "
          f"after {WARMUP} warm-up, interleaved in blocks of {BLOCK}:")  # fmt: skip
    print(f"  {'server':<8} {'median ms':>10} {'p90 ms':>8} {'p99 ms':>8} {'portal CPU ms/req':>18}")
    for name, row in servers.items():
        print(
            f"  {name:<8} {row['median_ms']:>10.3f} {row['p90_ms']:>8.3f} {row['p99_ms']:>8.3f}"
            f" {row['portal_cpu_ms_per_request']:>18.3f}"
        )
    verdict = "met" if ratio < GOAL else "NOT met"
    print(f"  ratio of medians audit/off: {ratio:.3f}x (goal < {GOAL}x: {verdict})")
    print(f"  chain: intact={verify['intact']}, {verify['verified']} events verified, {verify['unsealed']} unsealed; "
          f"admin.change events {check['admin_change']} (expected {args.requests + WARMUP}: {WARMUP} warm-up + "
          f"{args.requests}), of them renames to group-*: {check['measured']} "
          f"-> {'as expected' if chain_ok else 'NOT as expected'}")  # fmt: skip


if __name__ == "__main__":
    main()
