"""`manage.py audit`: verify the hash chain, prune old events, export, print database grants."""

import json as jsonlib
import os
import re
import sys
import tempfile
import time
from argparse import ArgumentTypeError
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.utils import timezone

from apps.audit import chain, export
from apps.audit.capture import postgresql
from apps.audit.models import AuditEvent
from apps.audit.services import audit_prune, record

RELATIVE = re.compile(r"^(\d+)([dhm])$")
UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def moment(text: str) -> datetime:
    """2026-11-01, 2026-11-01T08:00[:00][Z|+02:00] (UTC when no zone is given), or 7d / 12h / 30m ago."""
    relative = RELATIVE.match(text.strip())
    if relative:
        return timezone.now() - timedelta(**{UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ArgumentTypeError(
            f"{text!r} is not a time: use a date (2026-11-01), a date and time (2026-11-01T08:00Z) "
            "or an age (7d, 12h, 30m)"
        ) from None
    return value if timezone.is_aware(value) else value.replace(tzinfo=timezone.UTC)


def days(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ArgumentTypeError(f"{text!r} is not a whole number of days (1 or more)")
    return int(text)


class Command(BaseCommand):
    help = "Work with the audit trail: verify the hash chain, prune old events, export, print database grants."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="subcommand", required=True, metavar="{verify,prune,export,grants}")
        verify = commands.add_parser(
            "verify",
            help="Walk the whole chain; exit 0 when intact, 1 at the first broken link.",
            description="Walk the sealed chain in order, in bounded memory, and report the first broken link.",
        )
        verify.add_argument("--json", action="store_true", help="Print the result as JSON.")
        prune = commands.add_parser(
            "prune",
            help="Delete events older than the retention from the start of the chain, leaving a checkpoint.",
        )
        prune.add_argument(
            "--older-than",
            type=days,
            default=settings.AUDIT_LOG_RETENTION_DAYS,
            metavar="DAYS",
            help=f"Age in days (default AUDIT_LOG_RETENTION_DAYS, now {settings.AUDIT_LOG_RETENTION_DAYS}).",
        )
        prune.add_argument("--dry-run", action="store_true", help="Say what would be deleted; delete nothing.")
        prune.add_argument("--json", action="store_true", help="Print the result as JSON.")
        exporter = commands.add_parser("export", help="Stream events as JSON Lines or CSV, oldest first.")
        exporter.add_argument("--since", type=moment, help="From this time (2026-11-01, 2026-11-01T08:00Z, 7d).")
        exporter.add_argument("--until", type=moment, help="Up to this time (same forms as --since).")
        exporter.add_argument("--action", help="Only this action, e.g. auth.login_failed.")
        exporter.add_argument("--actor", help="Only events by this username.")
        exporter.add_argument("--format", choices=export.FORMATS, default="jsonl", help="jsonl (default) or csv.")
        exporter.add_argument("--output", type=Path, help="Write to this file (atomically) instead of stdout.")
        grants = commands.add_parser(
            "grants",
            help="Print the SQL giving a PostgreSQL role what the portal needs and no way around the audit guards.",
        )
        grants.add_argument("role", help="The PostgreSQL role the portal runs as (not the tables' owner).")

    def handle(self, *args: object, **options: object) -> None:
        getattr(self, f"handle_{options['subcommand']}")(**options)

    def handle_verify(self, *, json: bool = False, **options: object) -> None:
        chain.seal()  # what committed a moment ago belongs in the check
        started = time.monotonic()
        checked, broken = 0, None
        progress = self.stderr.isatty() and not json
        for step in chain.verify():
            if isinstance(step, chain.Break):
                broken, checked = step, step.verified
            else:
                checked = step
                if progress:
                    self.stderr.write(f"\rverified {checked:,} events", ending="")
        if progress:
            self.stderr.write("")
        report = {
            "intact": broken is None,
            "verified": checked,
            "unsealed": AuditEvent.objects.filter(seq__isnull=True).count(),
            "seconds": round(time.monotonic() - started, 3),
            "first_break": None if broken is None else broken.__dict__,
        }
        self.print_verify(report, as_json=json)
        if broken is not None:
            sys.exit(1)

    def handle_prune(self, *, older_than: int, dry_run: bool, json: bool, **options: object) -> None:
        try:
            result = audit_prune(older_than=timedelta(days=older_than), dry_run=dry_run)
        except (ValueError, DatabaseError) as exc:
            raise CommandError(f"prune refused: {exc}") from None
        if json:
            self.stdout.write(jsonlib.dumps(result, indent=2))
        elif dry_run:
            self.stdout.write(f"Would delete {result['events']:,} events older than {older_than} days "
                              f"(up to seq {result['upto_seq']}).")  # fmt: skip
        else:
            self.stdout.write(f"Deleted {result['removed']:,} events older than {older_than} days; "
                              "a checkpoint keeps the rest verifiable.")  # fmt: skip

    def handle_export(self, *, since: datetime | None, until: datetime | None, action: str | None,
                      actor: str | None, format: str, output: Path | None, **options: object) -> None:  # fmt: skip
        events = AuditEvent.objects.all()
        if since:
            events = events.filter(timestamp__gte=since)
        if until:
            events = events.filter(timestamp__lt=until)
        if action:
            events = events.filter(action=action)
        if actor:
            events = events.filter(actor_username=actor)
        filters = {
            k: str(v) for k, v in {"since": since, "until": until, "action": action, "actor": actor}.items() if v
        }
        interrupted = False
        try:
            written = self.write_export(export.lines(events, format), output) - (format == "csv")  # less the header
        except BrokenPipeError:  # the reader went away (`| head`): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            written, interrupted = -1, True
        record("audit.export", details={"format": format, "filters": filters, "events": written,
                                        "output": str(output) if output else "stdout",
                                        "interrupted": interrupted})  # fmt: skip
        chain.seal()
        self.stderr.write(
            "Export stopped: the reader closed the pipe." if interrupted else f"Exported {written:,} events."
        )

    def write_export(self, lines: Iterator[str], output: Path | None) -> int:
        """Write the lines to stdout, or to output atomically (a temporary file renamed into place)."""
        if output is None:
            return self.copy(lines, lambda line: self.stdout.write(line, ending=""))
        with tempfile.NamedTemporaryFile("w", dir=output.parent, delete=False, encoding="utf-8", newline="") as out:
            try:
                count = self.copy(lines, out.write)
                out.flush()
                os.fsync(out.fileno())
            except BaseException:
                Path(out.name).unlink(missing_ok=True)
                raise
        os.replace(out.name, output)
        return count

    def copy(self, lines: Iterator[str], write: Callable[[str], object]) -> int:
        progress = self.stderr.isatty()
        count = 0
        for count, line in enumerate(lines, start=1):
            write(line)
            if progress and count % 5000 == 0:
                self.stderr.write(f"\rexported {count:,} lines", ending="")
        if progress:
            self.stderr.write("")
        return count

    def handle_grants(self, *, role: str, **options: object) -> None:
        try:
            self.stdout.write(postgresql.runtime_grants(role))
        except ValueError as exc:
            raise CommandError(str(exc)) from None

    def print_verify(self, report: dict, *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(jsonlib.dumps(report, indent=2))
        elif report["intact"]:
            self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {report['verified']:,} events verified "
                                                 f"in {report['seconds']} s."))  # fmt: skip
        else:
            b = report["first_break"]
            self.stdout.write(self.style.ERROR(
                f"Audit chain BROKEN at seq {b['seq']} (event id {b['event_id']}): {b['problem']}.\n"
                f"  expected: {b['expected']}\n  found:    {b['found']}\n"
                f"{report['verified']:,} events before it verified."))  # fmt: skip
