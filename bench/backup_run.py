"""Backups, side by side with the tools an operator would otherwise script: time, size, verify, restore, memory.

One run, on one seeded PostgreSQL database (bench/backup_seed.py: --size-mb of shop
tables with indexes, beside the portal's own tables, kept between runs as
opsportal_bench_backup_<size>) and --files-mb of files (a third incompressible),
the portal configured by its environment alone (DATABASE_URL = that database,
BACKUP_DIR in a temporary folder), every step a separate process:

- backup: `manage.py backup run --policy P --json` for three policies, verify_after
  off (verify is timed on its own): bench-db (the database), bench-full (database +
  files), bench-age (database + files, encrypted to an age recipient); wall time,
  stored size and the process's peak RSS (sampled every 50 ms);
- against: `pg_dump | gzip`, `pg_dump -Fc` (its built-in gzip), `pg_dump -Fc -Z0 |
  zstd -1 -T0` (a reference: the same pipeline in C tools), and for the files
  `tar -c | gzip`, all as shell pipelines writing to files;
- verify: `manage.py backup verify ID --json` of the bench-full backup, MB/s of
  stored bytes, against `sha256sum` of the same artifact files (both warm in cache);
- restore: `manage.py backup restore ID --target URL --yes` of the bench-db backup into
  an empty scratch database, against `pg_restore --no-owner -d` of the `pg_dump -Fc`
  file into another.

Seconds are wall time of the whole process (Python and Django's start-up included:
the `backup list` row shows that alone) and, for backups, the run's own time (the
record's duration: dump, archive, manifest), which is what compares with the shell
pipelines.

Goals (issue 8): backup >= 2.5x faster than `pg_dump | gzip` with output no larger;
peak RSS of the backup process flat and under 100 MB.

Run on demand, on a quiet machine, never by the tests:
    .venv/bin/python -m bench.backup_run [--size-mb 500] [--files-mb 200] [--json]
    .venv/bin/python -m bench.backup_run --size-mb 20 --files-mb 8     # a quick check that it works
"""

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # also runs as `python bench/backup_run.py`

import psycopg

from bench.audit_verify import sampled
from bench.backup_seed import ensure_database, seed_files
from bench.common import (
    django_json,
    machine,
    migrate,
    named_postgres,
    portal_env,
    postgres_env,
    progress,
    scratch_postgres,
)
from tests.services import ROOT

REDIS_DB = 15
SPEEDUP_GOAL = 2.5  # x faster than pg_dump | gzip
RSS_GOAL_MIB = 100
# The bench policies, made afresh (their old records deleted) by each run; an age identity for bench-age.
POLICIES = """
import json
import pyrage
from apps.backups.models import Backup, BackupPolicy, Drill

files = {files!r}
identity = pyrage.x25519.Identity.generate()
shapes = {{
    "bench-db": {{"include_media": False, "paths": [], "recipients": ""}},
    "bench-full": {{"include_media": False, "paths": [files], "recipients": ""}},
    "bench-age": {{"include_media": False, "paths": [files], "recipients": str(identity.to_public())}},
}}
Drill.objects.filter(policy__name__in=shapes).delete()
Backup.objects.filter(policy__name__in=shapes).delete()
for name, shape in shapes.items():
    BackupPolicy.objects.update_or_create(
        name=name,
        defaults={{**shape, "databases": ["default"], "compression_level": {level}, "verify_after": False,
                   "enabled": False, "storage": "local", "keep_last": 0}},
    )
print(json.dumps({{"identity": str(identity)}}))
"""


def shell(command: str) -> float:
    """Run a shell pipeline (pipefail: any stage failing fails it); its wall seconds."""
    started = time.perf_counter()
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{command} exited with {result.returncode}:\n{result.stderr[-3000:]}")
    return seconds


def newest_backup(database_url: str, policy: str) -> dict:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT b.id, b.status, b.size_bytes, b.location, b.error, extract(epoch FROM b.duration)"
            " FROM backups_backup b"
            " JOIN backups_backuppolicy p ON p.id = b.policy_id WHERE p.name = %s ORDER BY b.id DESC LIMIT 1",
            [policy],
        ).fetchone()
    if row is None:
        raise RuntimeError(f"no backup of {policy} was recorded")
    backup = dict(zip(("id", "status", "size_bytes", "location", "error", "seconds"), row, strict=True))
    backup["seconds"] = float(backup["seconds"] or 0)
    if backup["status"] != "succeeded":
        raise RuntimeError(f"the backup of {policy} {backup['status']}: {backup['error']}")
    return backup


def manage_args(*args: str) -> list[str]:
    return [sys.executable, "manage.py", *args]


def backups(database_url: str, env: dict, root: Path) -> dict[str, dict]:
    """Each bench policy's run, after `backup list` (what Django's start alone costs, in time and memory)."""
    progress("backup list (the start-up alone)")
    out = {"startup": sampled(manage_args("backup", "list", "--json"), env, root / "list.json")}
    for policy in ("bench-db", "bench-full", "bench-age"):
        progress(f"backup run --policy {policy}")
        run = sampled(manage_args("backup", "run", "--policy", policy, "--json"), env, root / f"{policy}.json")
        out[policy] = {**run, "backup": newest_backup(database_url, policy)}
    return out


def baselines(database_url: str, files: Path, root: Path) -> dict[str, dict]:
    """The database with pg_dump's own pipelines, the files with tar | gzip; seconds and bytes of each."""
    url = shlex.quote(database_url)
    commands = {
        "pg_dump | gzip": f"pg_dump --no-owner -d {url} | gzip > {root}/plain.sql.gz",
        "pg_dump -Fc": f"pg_dump -Fc --no-owner -d {url} > {root}/custom.pgdump",
        "pg_dump -Fc -Z0 | zstd -1": f"pg_dump -Fc -Z0 --no-owner -d {url} | zstd -q -1 -T0 > {root}/custom.pgdump.zst",
        "tar | gzip (files)": f"tar -cf - -C {shlex.quote(str(files))} . | gzip > {root}/files.tar.gz",
    }
    outputs = ("plain.sql.gz", "custom.pgdump", "custom.pgdump.zst", "files.tar.gz")
    out = {}
    for (name, command), output in zip(commands.items(), outputs, strict=True):
        progress(name)
        seconds = shell(command)
        out[name] = {"wall_seconds": round(seconds, 3), "bytes": (root / output).stat().st_size}
    return out


def verify(env: dict, backup: dict, backup_dir: Path, root: Path) -> dict[str, dict]:
    artifacts = sorted(path for path in (backup_dir / backup["location"]).iterdir() if path.is_file())
    stored = sum(path.stat().st_size for path in artifacts)
    progress("sha256sum of the artifacts")
    plain = shell("sha256sum " + " ".join(shlex.quote(str(path)) for path in artifacts) + " > /dev/null")
    progress(f"backup verify {backup['id']}")
    ours = sampled(manage_args("backup", "verify", str(backup["id"]), "--json"), env, root / "verify.json")
    if ours["exit_status"] != 0:
        raise RuntimeError(f"backup verify {backup['id']} failed: {ours['output']}")
    return {
        "backup verify": {**ours, "bytes": stored, "mb_per_second": stored / 2**20 / ours["wall_seconds"]},
        "sha256sum": {"wall_seconds": round(plain, 3), "bytes": stored, "mb_per_second": stored / 2**20 / plain},
    }


def restores(env: dict, backup: dict, root: Path) -> dict[str, dict]:
    out = {}
    with scratch_postgres("restore") as target:
        progress(f"backup restore {backup['id']} into an empty database")
        args = manage_args("backup", "restore", str(backup["id"]), "--target", target, "--yes", "--json")
        ours = sampled(args, env, root / "restore.json")
        if ours["exit_status"] != 0:
            raise RuntimeError(f"backup restore {backup['id']} failed: {ours['output']}")
        out["backup restore"] = ours
    with scratch_postgres("restore") as target:
        progress("pg_restore of the pg_dump -Fc file into an empty database")
        command = f"pg_restore --no-owner --no-privileges --exit-on-error -d {shlex.quote(target)} {root}/custom.pgdump"
        out["pg_restore"] = {"wall_seconds": round(shell(command), 3)}
    return out


def run(size_mb: int, files_mb: float, level: int, root: Path) -> dict:
    database_url = named_postgres(f"opsportal_bench_backup_{size_mb}")
    files, backup_dir = root / "files", root / "backups"
    env = portal_env(
        root / "var",
        root / "log.json",
        LOG_LEVEL="WARNING",
        BACKUP_DIR=str(backup_dir),
        **postgres_env(database_url, REDIS_DB),
    )
    env["PYTHONPATH"] = str(ROOT)
    progress(f"migrating {database_url}")
    migrate(env)
    ensure_database(database_url, size_mb)
    progress(f"writing {files_mb:.0f} MB of files")
    made = seed_files(files, files_mb)
    django_json(POLICIES.format(files=str(files), level=level), env)
    with psycopg.connect(database_url) as conn:
        [(table_bytes,)] = conn.execute(
            "SELECT sum(pg_total_relation_size(oid)) FROM pg_class WHERE relname LIKE 'shop\\_%%' AND relkind = 'r'"
        ).fetchall()
        database_bytes = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    ours = backups(database_url, env, root)
    theirs = baselines(database_url, files, root)
    checked = verify(env, ours["bench-full"]["backup"], backup_dir, root)
    restored = restores(env, ours["bench-db"]["backup"], root)
    return {
        "database": {"shop_table_bytes": int(table_bytes), "database_bytes": database_bytes},
        "files": made,
        "level": level,
        "backup": ours,
        "baselines": theirs,
        "verify": checked,
        "restore": restored,
    }


def goals(result: dict) -> dict[str, object]:
    ours, gzip = result["backup"]["bench-db"], result["baselines"]["pg_dump | gzip"]
    speedup = gzip["wall_seconds"] / ours["wall_seconds"]
    peak = max(row["peak_rss_mib"] for name, row in result["backup"].items() if name != "startup")
    return {
        "speedup_vs_pg_dump_gzip": round(speedup, 2),
        "speedup_in_run": round(gzip["wall_seconds"] / ours["backup"]["seconds"], 2),
        "speed_met": speedup >= SPEEDUP_GOAL,
        "size_met": ours["backup"]["size_bytes"] <= gzip["bytes"],
        "peak_rss_mib": peak,
        "startup_rss_mib": result["backup"]["startup"]["peak_rss_mib"],
        "rss_met": peak < RSS_GOAL_MIB,
    }


def table(result: dict) -> str:
    mib = 2**20
    lines = [
        "| what | seconds (wall) | seconds (in the run) | MB stored | MB/s (source) | peak RSS MiB (25/50/75%/end) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    startup = result["backup"]["startup"]
    lines.append(
        f"| start-up alone: `backup list` | {startup['wall_seconds']:.2f} | | | | {startup['peak_rss_mib']:.0f} |"
    )
    db_raw = result["database"]["database_bytes"] / mib
    full_raw = db_raw + result["files"]["bytes"] / mib
    raw = {"bench-db": db_raw, "bench-full": full_raw, "bench-age": full_raw}
    labels = {
        "bench-db": "backup run: database",
        "bench-full": "backup run: database + files",
        "bench-age": "backup run: database + files, age",
    }
    for policy, row in result["backup"].items():
        if policy == "startup":
            continue
        at = "/".join(f"{value:.0f}" for value in row["rss_mib_at"].values())
        seconds = row["backup"]["seconds"]
        lines.append(
            f"| {labels[policy]} | {row['wall_seconds']:.2f} | {seconds:.2f} | {row['backup']['size_bytes'] / mib:.1f}"
            f" | {raw[policy] / seconds:.0f} | {row['peak_rss_mib']:.0f} ({at}) |"
        )
    for name, row in result["baselines"].items():
        source = result["files"]["bytes"] / mib if "files" in name else db_raw
        lines.append(
            f"| `{cell(name)}` | {row['wall_seconds']:.2f} | | {row['bytes'] / mib:.1f}"
            f" | {source / row['wall_seconds']:.0f} | |"
        )
    for name, row in result["verify"].items():
        rss = f"{row['peak_rss_mib']:.0f}" if "peak_rss_mib" in row else ""
        lines.append(
            f"| verify: `{name}` | {row['wall_seconds']:.2f} | | {row['bytes'] / mib:.1f}"
            f" | {row['mb_per_second']:.0f} (stored bytes) | {rss} |"
        )
    for name, row in result["restore"].items():
        rss = f"{row['peak_rss_mib']:.0f}" if "peak_rss_mib" in row else ""
        lines.append(f"| restore (database): `{name}` | {row['wall_seconds']:.2f} | | | | {rss} |")
    return "\n".join(lines)


def cell(text: str) -> str:
    """Text for a markdown table cell (a pipe would end the cell)."""
    return text.replace("|", "\\|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=500, help="shop tables with indexes, MB (default 500)")
    parser.add_argument("--files-mb", type=float, default=200, help="files, MB (default 200)")
    parser.add_argument("--level", type=int, default=2, help="the policies' zstd level (default 2, the default)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args()
    if args.size_mb < 1 or args.files_mb <= 0 or not 1 <= args.level <= 19:
        parser.error("--size-mb >= 1, --files-mb > 0 and --level 1..19, please")

    with tempfile.TemporaryDirectory(prefix="opsportal-backup-bench-") as root:
        result = run(args.size_mb, args.files_mb, args.level, Path(root))
    summary = {"benchmark": "backup_run", "machine": machine(), **result, "goals": goals(result)}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    database, files = result["database"], result["files"]
    print(
        f"Backups of {database['database_bytes'] / 2**20:.0f} MB of PostgreSQL"
        f" ({database['shop_table_bytes'] / 2**20:.0f} MB of shop tables and indexes) and"
        f" {files['bytes'] / 2**20:.0f} MB in {files['files']} files"
        f" ({files['random_bytes'] / 2**20:.0f} MB random); zstd level {result['level']}; {machine()}\n"
    )
    print(table(result))
    met = summary["goals"]
    print(
        f"\nGoals: {met['speedup_vs_pg_dump_gzip']}x faster than pg_dump | gzip in wall time,"
        f" {met['speedup_in_run']}x in the run's own time (>= {SPEEDUP_GOAL}x:"
        f" {'met' if met['speed_met'] else 'NOT met'}), output no larger: {'met' if met['size_met'] else 'NOT met'},"
        f" peak RSS {met['peak_rss_mib']:.0f} MiB (< {RSS_GOAL_MIB}: {'met' if met['rss_met'] else 'NOT met'};"
        f" {met['peak_rss_mib'] - met['startup_rss_mib']:.0f} MiB above the start-up's own"
        f" {met['startup_rss_mib']:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
