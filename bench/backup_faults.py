"""`manage.py backup run` SIGKILLed at 20 random points, at full size: what tests/faults/test_backup_faults.py
runs with fewer points in CI, with the same code (tests/faults/backup_kills.py).

A scratch PostgreSQL database (migrated, with --size-mb of bench/backup_seed.py's shop
tables) and --files-mb of files as MEDIA_ROOT, the default policy backing up both. A
clean run measures a backup's duration; each kill lands at a random share of it (RNG
seeded with --seed). Prints each kill: when, the record's status at the kill, what the
next run made of it; then every violation of the rules (none expected).

Run on demand, never by the tests:
    .venv/bin/python -m bench.backup_faults [--points 20] [--size-mb 5] [--files-mb 12] [--seed 8] [--json]
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # also runs as `python bench/backup_faults.py`

from bench.backup_seed import seed_database, seed_files
from bench.common import POSTGRES_URL, REDIS_URL, machine, progress
from tests.faults import backup_kills
from tests.faults.harness import portal

REDIS_DB = 15


def run(points: int, size_mb: int, files_mb: float, seed: int, root: Path) -> dict:
    files = root / "media"
    seed_files(files, files_mb)
    with portal(
        POSTGRES_URL, REDIS_URL, REDIS_DB, root, BACKUP_DIR=str(root / "backups"), MEDIA_ROOT=str(files)
    ) as site:
        seed_database(site.database_url, size_mb)
        progress(f"{points} kills")
        return backup_kills.kill_runs(site, points=points, seed=seed, log=progress)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=20, help="kills (default 20)")
    parser.add_argument("--size-mb", type=int, default=5, help="shop tables to seed, MB (default 5)")
    parser.add_argument("--files-mb", type=float, default=12, help="files in MEDIA_ROOT, MB (default 12: a run ~1.3 s)")
    parser.add_argument("--seed", type=int, default=8, help="the RNG seed of the kill points (default 8)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a summary")
    args = parser.parse_args()
    if args.points < 1 or args.size_mb < 1 or args.files_mb <= 0:
        parser.error("--points and --size-mb at least 1, --files-mb above 0")

    with tempfile.TemporaryDirectory(prefix="opsportal-backup-faults-") as root:
        result = run(args.points, args.size_mb, args.files_mb, args.seed, Path(root))
    found = backup_kills.violations(result)
    if args.json:
        print(json.dumps({"benchmark": "backup_faults", "machine": machine(), **result, "violations": found}, indent=2))
        return
    print(f"`backup run` SIGKILLed at {args.points} random points of a {result['duration']:.2f} s run:")
    for kill in result["kills"]:
        after = kill["next_run"]["record"]
        print(
            f"  at {kill['after_seconds']:.2f} s: {kill['record']['status']:<9} -> next run: {after['status']}"
            f" ({after['error'][:60] or 'no error'}); alert fired: {kill['next_run']['alert_fired']}"
        )
    print(f"last run: exit {result['last']['exit']}, {result['last']['record']['status']}")
    print("violations:" if found else "violations: none")
    for line in found:
        print(f"  - {line}")


if __name__ == "__main__":
    main()
