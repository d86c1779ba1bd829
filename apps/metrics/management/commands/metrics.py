"""`manage.py metrics`: collect a tick now, list the series, prune past the retention.

Exit status: 0 done; 1 when `collect` got no value at all (every collector
failed), `series` finds none, or the database fails; 2 on a usage error
(argparse's, and a missing subcommand).
"""

import json as jsonlib
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from apps.metrics import services


class Command(BaseCommand):
    help = "Time series: `collect` one tick now, list `series` with their last value, `prune` past the retention."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="subcommand", metavar="{collect,series,prune}")
        collect = commands.add_parser(
            "collect", help="Collect one tick now (stored and broadcast like a scheduled one) and print its values.",
            description="Collect one tick now: stored and broadcast like a scheduled one; prints every value.",
        )  # fmt: skip
        collect.add_argument("--json", action="store_true", help="Print {at, values, timings_ms} as JSON.")
        series = commands.add_parser(
            "series", help="List the series with their last value and its age.",
            description="List the series with their unit, last value and its age.",
        )  # fmt: skip
        series.add_argument("--json", action="store_true", help="Print the list as JSON.")
        series.add_argument("--prefix", default="", help="Only the series whose name starts with this.")
        prune = commands.add_parser(
            "prune", help="Delete samples and rollups older than METRICS_*_RETENTION_* (in batches).",
            description="Delete raw samples older than METRICS_RAW_RETENTION_HOURS, 1-minute rollups older than "
                        "METRICS_MINUTE_RETENTION_DAYS, and 1-hour and 1-day rollups older than "
                        "METRICS_HOUR_RETENTION_DAYS.",
        )  # fmt: skip
        prune.add_argument("--json", action="store_true", help="Print the rows deleted per table as JSON.")
        prune.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")

    def handle(self, *args: object, **options: Any) -> None:
        handler = {"collect": self.collect, "series": self.series, "prune": self.prune}.get(options["subcommand"])
        if handler is None:
            raise CommandError("say what to do: metrics collect | series | prune (see --help)", returncode=2)
        try:
            handler(options)
        except DatabaseError as error:  # not migrated, or the database is down: one line, not a traceback
            raise CommandError(f"the database failed: {error} (is it up, and migrated?)", returncode=1) from None

    def collect(self, options: dict[str, Any]) -> None:
        collected = services.collect_and_store(prime=True)
        if options["json"]:
            self.stdout.write(jsonlib.dumps(collected.as_dict(), indent=2))
        else:
            width = max(map(len, collected.values), default=0)
            for name in sorted(collected.values):
                self.stdout.write(f"{name.ljust(width)}  {collected.values[name]:.6g}")
        if len(collected.values) <= 1:  # only the tick's own cost: every collector failed
            raise SystemExit(1)

    def series(self, options: dict[str, Any]) -> None:
        rows = [row for row in services.series_overview() if row["name"].startswith(options["prefix"])]
        if options["json"]:
            self.stdout.write(jsonlib.dumps(rows, indent=2))
        else:
            width = max((len(row["name"]) for row in rows), default=6)
            self.stdout.write(f"{'SERIES'.ljust(width)}  {'UNIT':8}  {'LAST VALUE':>12}  AGE")
            for row in rows:
                value = "-" if row["last_value"] is None else f"{row['last_value']:.6g}"
                age = "never" if row["age_seconds"] is None else f"{row['age_seconds']:.0f} s"
                self.stdout.write(f"{row['name'].ljust(width)}  {row['unit']:8}  {value:>12}  {age}")
        if not rows:
            raise SystemExit(1)

    def prune(self, options: dict[str, Any]) -> None:
        deleted = services.prune(dry_run=options["dry_run"])
        if options["json"]:
            self.stdout.write(jsonlib.dumps({"dry_run": options["dry_run"], "rows": deleted}))
            return
        verb = "would delete" if options["dry_run"] else "deleted"
        names = {"raw": "raw samples", "minute": "1-minute rollups", "hour": "1-hour rollups", "day": "1-day rollups"}
        self.stdout.write("; ".join(f"{verb} {count} {names[table]}" for table, count in deleted.items()))
