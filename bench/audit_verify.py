"""`manage.py audit verify` over a large chain: events/s and peak memory, with sealing timed on the way.

Steps, on a fresh migrated database (a temporary var dir for SQLite; with
--postgres a scratch PostgreSQL database):

1. seed: --events unsealed events inserted with one SQL statement, straight through
   the database driver (a recursive CTE on SQLite, generate_series on PostgreSQL),
   with small realistic content: an admin.change with a one-field diff, or a login;
2. seal: `chain.seal(batch=5000)` in `manage.py shell -c`, timed inside it
   ("seal throughput"); on PostgreSQL a VACUUM ANALYZE follows, untimed, as
   autovacuum would do after a million updates;
3. verify: `manage.py audit verify --json` as a subprocess, timed from outside, its
   RSS sampled every 50 ms; it must report the chain intact with every event verified;
4. baseline: a subprocess streaming the same rows with the same chunked keyset query
   (bench/audit_baselines.read_chain) and computing nothing, sampled the same way.
   verify - baseline is what hashing the chain costs over merely reading it.

Goal: >= 50,000 events/s with flat memory.

Run on demand, never by the tests:
    .venv/bin/python -m bench.audit_verify [--events 1000000] [--postgres] [--json]
"""

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # also runs as `python bench/audit_verify.py`

import psutil
import psycopg

from bench.common import django_json, machine, migrate, portal_env, postgres_env, progress, scratch_postgres
from tests.services import ROOT

GOAL = 50_000  # events/s
POLL = 0.05
COLUMNS = (
    '"timestamp", actor_id, actor_username, action, outcome, resource_type, resource_id, resource_repr, '
    "changes, details, ip, user_agent, request_id, prev_hash, hash"
)
AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SEED_SQLITE = f"""
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
INSERT INTO audit_auditevent ({COLUMNS})
SELECT strftime('%Y-%m-%d %H:%M:%S', 1793491200 + i / 100, 'unixepoch') || printf('.%06d', (i % 100) * 10000),
       1 + i % 5, 'operator' || (i % 5),
       CASE WHEN i % 4 = 0 THEN 'auth.login' ELSE 'admin.change' END, 'success', 'auth.group', i % 1000,
       'group-' || (i % 1000),
       CASE WHEN i % 4 = 0 THEN '{{}}' ELSE json_object('name', json_array('group-' || i, 'group-' || (i + 1))) END,
       json_object('writer', i % 8, 'n', i), '10.0.' || (i % 250) || '.' || (1 + i % 200), '{AGENT}',
       printf('%016x%016x', i * 2654435761, i), '', ''
  FROM n
"""
SEED_POSTGRES = f"""
INSERT INTO audit_auditevent ({COLUMNS})
SELECT timestamptz '2026-11-01 00:00:00+00' + i * interval '10 milliseconds',
       1 + i %% 5, 'operator' || (i %% 5),
       CASE WHEN i %% 4 = 0 THEN 'auth.login' ELSE 'admin.change' END, 'success', 'auth.group', (i %% 1000)::text,
       'group-' || (i %% 1000),
       CASE WHEN i %% 4 = 0 THEN '{{}}'::jsonb
            ELSE jsonb_build_object('name', jsonb_build_array('group-' || i, 'group-' || (i + 1))) END,
       jsonb_build_object('writer', i %% 8, 'n', i), ('10.0.' || (i %% 250) || '.' || (1 + i %% 200))::inet, '{AGENT}',
       md5(i::text), '', ''
  FROM generate_series(1, %s) AS i
"""
# The sealed events are counted too: what seal() returns can be fewer (see BENCHMARKS.md, issue 3).
SEAL = (
    "import json, time; from apps.audit import chain; from apps.audit.models import AuditEvent; "
    "started = time.perf_counter(); returned = chain.seal(batch=5000); seconds = time.perf_counter() - started; "
    "sealed = AuditEvent.objects.filter(seq__isnull=False).count(); "
    "print(json.dumps({'sealed': sealed, 'returned': returned, 'seconds': seconds}))"
)
BASELINE = "import json; from bench.audit_baselines import read_chain; print(json.dumps(read_chain()))"


def seed(events: int, var: Path, database_url: str | None) -> float:
    """Insert `events` unsealed events in one statement, bypassing Django; returns seconds."""
    started = time.perf_counter()
    if database_url:
        with psycopg.connect(database_url) as conn:
            conn.execute(SEED_POSTGRES, [events])
    else:
        conn = sqlite3.connect(var / "opsportal.sqlite3")
        with conn:
            conn.execute(SEED_SQLITE, [events])
        conn.close()
    return time.perf_counter() - started


def last_json(text: str) -> dict:
    """The JSON document a command printed last: all of stdout, or its last line."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return json.loads(text.strip().splitlines()[-1])


def sampled(args: list[str], env: dict[str, str], out: Path) -> dict:
    """Run args to completion; wall seconds, RSS over time (MiB), exit status and stdout."""
    samples: list[tuple[float, float]] = []
    with out.open("wb") as stdout:
        started = time.perf_counter()
        popen = subprocess.Popen(args, cwd=ROOT, env=env, stdout=stdout, stderr=subprocess.PIPE)
        watched = psutil.Process(popen.pid)
        while popen.poll() is None:
            try:
                samples.append((time.perf_counter() - started, watched.memory_info().rss / 2**20))
            except psutil.NoSuchProcess:
                break
            time.sleep(POLL)
        stderr = popen.communicate()[1].decode(errors="replace")
        wall = time.perf_counter() - started
    if popen.returncode not in (0, 1):
        raise RuntimeError(f"{args[1:4]} exited with {popen.returncode}:\n{stderr[-3000:]}")
    rss = [value for _, value in samples] or [0.0]

    def at(fraction: float) -> float:
        return round(next((value for moment, value in samples if moment >= fraction * wall), rss[-1]), 1)

    return {
        "wall_seconds": round(wall, 3),
        "peak_rss_mib": round(max(rss), 1),
        "rss_mib_at": {f"{int(f * 100)}%": at(f) for f in (0.25, 0.5, 0.75)} | {"end": round(rss[-1], 1)},
        "exit_status": popen.returncode,
        "output": last_json(out.read_text()),
    }


def run(events: int, postgres: bool, root: Path) -> dict:
    with ExitStack() as stack:
        database_url = stack.enter_context(scratch_postgres("verify")) if postgres else None
        env = portal_env(root / "var", root / "log.json", LOG_LEVEL="WARNING",
                         **(postgres_env(database_url, 13) if database_url else {}))  # fmt: skip
        env["PYTHONPATH"] = str(ROOT)
        migrate(env)
        progress(f"seeding {events:,} events")
        seed_seconds = seed(events, root / "var", database_url)
        progress(f"seeded in {seed_seconds:.1f} s; sealing")
        seal = django_json(SEAL, env, timeout=7200)
        progress(f"sealed in {seal['seconds']:.1f} s; verifying")
        if database_url:
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE audit_auditevent")
        verify = sampled([sys.executable, "manage.py", "audit", "verify", "--json"], env, root / "verify.json")
        progress(f"verified in {verify['wall_seconds']:.1f} s; baseline")
        baseline = sampled([sys.executable, "manage.py", "shell", "-c", BASELINE], env, root / "baseline.json")
    return {
        "seed_seconds": round(seed_seconds, 3),
        "seal": {
            "sealed": seal["sealed"],
            "seal_returned": seal["returned"],
            "seconds": round(seal["seconds"], 3),
            "events_per_second": round(seal["sealed"] / seal["seconds"]),
        },
        "verify": verify,
        "baseline": baseline,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the chain (default 1,000,000)")
    parser.add_argument("--postgres", action="store_true", help="a scratch PostgreSQL database instead of SQLite")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a summary")
    args = parser.parse_args()
    if args.events < 1:
        parser.error("--events must be at least 1")

    with tempfile.TemporaryDirectory(prefix="opsportal-audit-verify-") as root:
        result = run(args.events, args.postgres, Path(root))
    report = result["verify"]["output"]
    for case in ("verify", "baseline"):
        seconds = result[case]["wall_seconds"]
        result[case]["events_per_second"] = round(args.events / seconds)
    inner = report["verified"] / report["seconds"] if report["seconds"] else 0.0
    result["verify"]["events_per_second_inside"] = round(inner)
    read = result["baseline"]["output"]
    inner_read = read["read"] / read["seconds"] if read["seconds"] else 0.0
    result["baseline"]["events_per_second_inside"] = round(inner_read)
    correct = report["intact"] and report["verified"] == args.events and result["verify"]["exit_status"] == 0
    goal_met = correct and result["verify"]["events_per_second"] >= GOAL
    database = "postgresql" if args.postgres else "sqlite"
    summary = {"benchmark": "audit_verify", "machine": machine(), "database": database, "events": args.events,
               **result, "correct": correct, "goal": GOAL, "goal_met": goal_met}  # fmt: skip
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    verify, baseline = result["verify"], result["baseline"]
    print(f"`audit verify` over {args.events:,} events on {database}:")
    print(f"  seed (one INSERT ... SELECT): {result['seed_seconds']:.1f} s")
    print(f"  seal (chain.seal(batch=5000)): {result['seal']['seconds']:.1f} s, "
          f"{result['seal']['events_per_second']:,} events/s ({result['seal']['sealed']:,} sealed, "
          f"seal() returned {result['seal']['seal_returned']:,})")  # fmt: skip
    print(f"  {'':<30} {'seconds':>8} {'events/s':>9} {'peak RSS MiB':>13}  RSS MiB at 25% / 50% / 75% / end")
    for name, row in (("audit verify --json", verify), ("baseline: read only", baseline)):
        at = " / ".join(f"{value:.0f}" for value in row["rss_mib_at"].values())
        figures = f"{row['wall_seconds']:>8.1f} {row['events_per_second']:>9,} {row['peak_rss_mib']:>13.1f}"
        print(f"  {name:<30} {figures}  {at}")
    print(f"  own timers (after Django's startup): verify {report['seconds']:.1f} s, {inner:,.0f} events/s; "
          f"read only {read['seconds']:.1f} s, {inner_read:,.0f} events/s")  # fmt: skip
    print(f"  chain: intact={report['intact']}, verified {report['verified']:,} of {args.events:,}, "
          f"unsealed {report['unsealed']}")  # fmt: skip
    print(f"  goal >= {GOAL:,} events/s (wall, whole command): {'met' if goal_met else 'NOT met'}")


if __name__ == "__main__":
    main()
