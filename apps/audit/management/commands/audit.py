"""`manage.py audit verify`: check the audit trail's hash chain."""

import json as jsonlib
import sys
import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit import chain
from apps.audit.capture import postgresql
from apps.audit.models import AuditEvent


class Command(BaseCommand):
    help = "Work with the audit trail: verify its hash chain; print the database grants for a hardened role."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="subcommand", required=True, metavar="{verify,grants}")
        verify = commands.add_parser(
            "verify",
            help="Walk the whole chain; exit 0 when intact, 1 at the first broken link.",
            description="Walk the sealed chain in order, in bounded memory, and report the first broken link.",
        )
        verify.add_argument("--json", action="store_true", help="Print the result as JSON.")
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
