"""`manage.py health`: run the checks now and say whether things are fine.

For cron, CI and a Kubernetes exec probe. Nothing is stored: the scheduled run
does that. Exit status: 0 healthy, 1 when any check is at or above --fail-on
(default critical), 2 on a usage error (an unknown --check name, a bad
--timeout), as argparse does.
"""

import json as jsonlib
from argparse import ArgumentTypeError
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.health import services
from apps.health.checks import Result, Status

COLUMNS = [("CHECK", 28), ("STATUS", 8), ("LATENCY", 9), ("MESSAGE", 0)]
MAX_TIMEOUT = 300.0


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= MAX_TIMEOUT:  # also refuses nan and inf
        raise ArgumentTypeError(f"the timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds, not {text}")
    return value


class Command(BaseCommand):
    help = (
        "Run the health checks now and print a table (or JSON). Exit status 0 when healthy, 1 when any check "
        "is at or above --fail-on, 2 on a usage error."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the results and the overall status as JSON.")
        parser.add_argument("--check", action="append", metavar="NAME", dest="checks",
                            help="Run only this check; repeat for more. --list shows the names.")  # fmt: skip
        parser.add_argument("--fail-on", choices=[Status.WARNING.value, Status.CRITICAL.value],
                            default=Status.CRITICAL.value,
                            help="Exit 1 when any check is at this status or worse (default: critical).")  # fmt: skip
        parser.add_argument("--timeout", type=seconds, metavar="SECONDS",
                            help="Time limit of every check, instead of each one's own (default 5 s).")  # fmt: skip
        parser.add_argument("--list", action="store_true", help="List the check names and exit.")

    def handle(self, *args: object, **options: Any) -> None:
        if options["list"]:
            self.stdout.write("\n".join(services.check_names()))
            return
        try:
            results = services.run_checks(options["checks"], timeout=options["timeout"])
        except services.UnknownCheckError as error:
            raise CommandError(str(error), returncode=2) from None
        status = services.overall(result.status for result in results)
        if options["json"]:
            payload = {"status": str(status), "checks": [result.as_dict() for result in results]}
            self.stdout.write(jsonlib.dumps(payload, indent=2, default=str))
        else:
            self.stdout.write(table(results))
            self.stdout.write(f"\nOverall: {status}")
        if any(result.status.at_least(options["fail_on"]) for result in results):
            raise SystemExit(1)


def table(results: list[Result]) -> str:
    lines = ["  ".join(title.ljust(width) for title, width in COLUMNS).rstrip()]
    for result in results:
        cells = [result.name, str(result.status), f"{result.latency_ms:.0f} ms", result.message]
        lines.append("  ".join(fit(cell, width) for cell, (_, width) in zip(cells, COLUMNS, strict=True)).rstrip())
    return "\n".join(lines)


def fit(text: str, width: int) -> str:
    if not width:
        return text
    return text.ljust(width) if len(text) <= width else f"{text[: width - 1]}…"
