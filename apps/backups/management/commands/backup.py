"""`manage.py backup`: run, list, verify, drill, restore and prune backups; make an age key pair.

For cron and for people at a terminal. Exit status: 0 done and fine; 1 the
backup, verify, drill, restore or prune did not fully succeed (a failure, an
integrity error, a backup not verified); 2 a usage error (argparse's, an
unknown policy or backup, an unreadable identity file); 3 busy: another run of
the policy holds its lock. The acts are audited by the services, as "cli:<OS
user>" (the command's context), never as a made-up portal user.
"""

import dataclasses
import json as jsonlib
import sys
from argparse import ArgumentTypeError
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyrage
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.template.defaultfilters import filesizeformat

from apps.backups import drill, restore, retention, services
from apps.backups.errors import BackupBusyError, BackupError
from apps.backups.management.progressbar import ProgressBar
from apps.backups.models import Backup, BackupPolicy, Status, Trigger, Verification

DEFAULT_POLICY = "default"
EXIT_FAILED, EXIT_USAGE, EXIT_BUSY = 1, 2, 3
LIST_COLUMNS = [("ID", 6), ("POLICY", 16), ("STARTED", 20), ("STATUS", 10), ("VERIFIED", 10), ("SIZE", 10),
                ("TRIGGER", 12), ("LOCATION", 0)]  # fmt: skip


def percent(text: str) -> int:
    value = text.strip().removesuffix("%")
    if not value.isdigit() or not 1 <= int(value) <= 100:
        raise ArgumentTypeError(f"{text!r} is not a percentage from 1 to 100 (e.g. 10 or 10%)")
    return int(value)


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ArgumentTypeError(f"{text!r} is not a whole number (1 or more)")
    return int(text)


def as_data(value: Any) -> Any:
    """A service's result (a dataclass, a model row) as JSON-ready data."""
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, Backup):
        return describe(value)
    return value


def describe(backup: Backup) -> dict[str, Any]:
    return {
        "id": backup.pk,
        "policy": backup.policy.name,
        "status": backup.status,
        "trigger": backup.trigger,
        "verification": backup.verification,
        "started_at": backup.started_at,
        "finished_at": backup.finished_at,
        "duration_seconds": backup.duration.total_seconds() if backup.duration else None,
        "size_bytes": backup.size_bytes,
        "encrypted": backup.encrypted,
        "storage": backup.storage,
        "location": backup.location,
        "pruned": backup.pruned_at is not None,
        "error": backup.error or backup.verify_error,
    }


class Command(BaseCommand):
    help = (
        "Back up, list, verify, drill, restore and prune; make an age key pair. Exit status 0 when done and fine, "
        "1 when the thing asked for did not fully succeed, 2 on a usage error, 3 when another run holds the lock."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="subcommand", required=True,
                                         metavar="{run,list,verify,drill,restore,prune,keygen}")  # fmt: skip
        run = commands.add_parser("run", help="Back up a policy now (a progress bar on a terminal).",
                                  description="Dump, compress, encrypt, checksum and store; then verify and prune "
                                              "as the policy says.")  # fmt: skip
        run.add_argument("--policy", default=DEFAULT_POLICY, help="The policy (default: default).")
        run.add_argument("--json", action="store_true", help="Print the backup's record as JSON.")
        listing = commands.add_parser("list", help="List backups, newest first.")
        listing.add_argument("--policy", help="Only this policy's backups.")
        listing.add_argument("--limit", type=positive, default=50, help="At most this many (default 50).")
        listing.add_argument("--json", action="store_true", help="Print the backups as JSON.")
        verify = commands.add_parser("verify", help="Re-read stored backups and check every checksum and the manifest.")
        which = verify.add_mutually_exclusive_group(required=True)
        which.add_argument("id", nargs="?", type=positive, help="The backup to verify (its ID, see `backup list`).")
        which.add_argument("--all", action="store_true", dest="every",
                           help="Every stored backup; with --sample, a rotating sample of each policy's.")  # fmt: skip
        verify.add_argument("--sample", type=percent, metavar="PCT",
                            help="Read only this share of the artifacts (a rotating sample).")  # fmt: skip
        verify.add_argument("--json", action="store_true", help="Print the results as JSON.")
        drilling = commands.add_parser("drill", help="Restore the newest verified backup into scratch databases "
                                                     "and check it against its manifest.")  # fmt: skip
        drilling.add_argument("--policy", default=DEFAULT_POLICY, help="The policy (default: default).")
        drilling.add_argument("--json", action="store_true", help="Print the drill and its checks as JSON.")
        self.add_restore(commands)
        prune = commands.add_parser("prune", help="Apply the retention rules: delete the backups no rule keeps.")
        prune.add_argument("--policy", help="Only this policy (default: every policy).")
        prune.add_argument("--dry-run", action="store_true",
                           help="Say what would go, and which rule keeps each survivor; delete nothing.")  # fmt: skip
        prune.add_argument("--json", action="store_true", help="Print the plan or the result as JSON.")
        keygen = commands.add_parser("keygen", help="Make an age key pair: the identity (secret) once on stdout, "
                                                    "the recipient (public) on stderr.")  # fmt: skip
        keygen.add_argument("--json", action="store_true", help='Print {"identity", "recipient"} as JSON on stdout.')

    def add_restore(self, commands: Any) -> None:
        restoring = commands.add_parser(
            "restore", help="Restore a backup into another database (--target) or in place (--in-place).",
            description="Checksums are verified before anything is written. In place, a pre-restore backup is "
                        "taken first and a typed confirmation (the policy's name) is asked unless --yes.",
        )  # fmt: skip
        restoring.add_argument("id", type=positive, help="The backup to restore (its ID, see `backup list`).")
        where = restoring.add_mutually_exclusive_group(required=True)
        where.add_argument("--target", metavar="URL", help="A DATABASE_URL (or SQLite file) to restore into.")
        where.add_argument("--in-place", action="store_true",
                           help="Over the portal's own databases and files, at their recorded paths.")  # fmt: skip
        restoring.add_argument("--yes", action="store_true", help="Do not ask for the typed confirmation (automation).")
        restoring.add_argument("--force", action="store_true",
                               help="Restore even when the backup's migrations differ from the code's.")  # fmt: skip
        restoring.add_argument("--identity", type=Path, metavar="FILE",
                               help="The age identity file (default: BACKUP_IDENTITY_FILE).")  # fmt: skip
        restoring.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: object, **options: Any) -> None:
        handler: Callable[..., None] = getattr(self, f"handle_{options['subcommand']}")
        try:
            handler(**options)
        except BackupBusyError as error:
            raise CommandError(f"busy: {error}", returncode=EXIT_BUSY) from None
        except BackupError as error:
            raise CommandError(str(error), returncode=EXIT_FAILED) from None
        except DatabaseError as error:  # not migrated, or the database is down: one line, not a traceback
            raise CommandError(f"the database failed: {error} (is it up, and migrated?)", returncode=1) from None

    # ------------------------------------------------------------ subcommands

    def handle_run(self, *, policy: str, json: bool, **options: Any) -> None:
        with self.progress_bar() as bar:
            backup = services.backup_run(self.policy(policy), trigger=Trigger.MANUAL, progress=bar)
        self.emit(describe(backup), json, self.say_backup)
        verified = backup.verification == Verification.OK or not backup.policy.verify_after
        if backup.status != Status.SUCCEEDED or not verified:
            sys.exit(EXIT_FAILED)

    def handle_list(self, *, policy: str | None, limit: int, json: bool, **options: Any) -> None:
        backups = Backup.objects.select_related("policy").order_by("-started_at")
        if policy:
            backups = backups.filter(policy=self.policy(policy))
        rows = [describe(backup) for backup in backups[:limit]]
        self.emit(rows, json, self.say_list)

    def handle_verify(self, *, id: int | None, every: bool, sample: int | None, json: bool, **options: Any) -> None:
        if id is not None:
            targets = [(self.backup(id), None)]
        elif sample:  # a rotating sample across each policy's backups
            targets = [(None, policy) for policy in BackupPolicy.objects.filter(backups__status=Status.SUCCEEDED)
                       .distinct().order_by("name")]  # fmt: skip
        else:
            stored = Backup.objects.filter(status=Status.SUCCEEDED, pruned_at__isnull=True).select_related("policy")
            targets = [(backup, None) for backup in stored.order_by("started_at")]
        results = []
        for backup, policy in targets:
            if backup is not None:
                result = services.verify(backup, sample_percent=sample)
                label = {"backup_id": backup.pk, "policy": backup.policy.name, "location": backup.location}
            else:
                result = services.verify_policy_sample(policy, percent=sample)
                label = {"backup_id": None, "policy": policy.name, "location": None}
            results.append({**label, **as_data(result)})
        self.emit(results, json, self.say_verify)
        if not results or not all(result["ok"] for result in results):
            sys.exit(EXIT_FAILED)

    def handle_drill(self, *, policy: str, json: bool, **options: Any) -> None:
        done = drill.drill(policy=self.policy(policy), trigger=Trigger.MANUAL)
        data = {"id": done.pk, "policy": done.policy.name, "backup_id": done.backup_id, "status": done.status,
                "duration_seconds": done.duration.total_seconds() if done.duration else None,
                "checks": done.checks, "error": done.error}  # fmt: skip
        self.emit(data, json, self.say_drill)
        if done.status != Status.SUCCEEDED:
            sys.exit(EXIT_FAILED)

    def handle_restore(self, *, id: int, target: str | None, in_place: bool, yes: bool, force: bool,
                       identity: Path | None, json: bool, **options: Any) -> None:  # fmt: skip
        backup = self.backup(id)
        key = self.identity(identity) if identity else None
        if in_place and not yes:
            self.confirm(backup)
        with self.progress_bar() as bar:
            result = restore.restore(backup, target=target, in_place=in_place, force=force, actor=None,
                                     progress=bar, identity=key)  # fmt: skip
        self.emit(as_data(result), json, lambda data: self.say_restore(backup, result))

    def handle_prune(self, *, policy: str | None, dry_run: bool, json: bool, **options: Any) -> None:
        policies = [self.policy(policy)] if policy else list(BackupPolicy.objects.order_by("name"))
        results = [retention.prune(each, dry_run=dry_run) for each in policies]
        if json:
            self.stdout.write(jsonlib.dumps([result.as_dict() for result in results], indent=2))
        else:
            self.stdout.write("\n".join(line for result in results for line in result.lines()))
        if not all(result.ok for result in results):
            sys.exit(EXIT_FAILED)

    def handle_keygen(self, *, json: bool, **options: Any) -> None:
        identity = pyrage.x25519.Identity.generate()
        secret, recipient = str(identity), str(identity.to_public())
        if json:
            self.stdout.write(jsonlib.dumps({"identity": secret, "recipient": recipient}, indent=2))
            return
        self.stdout.write(f"# created by manage.py backup keygen\n# public key: {recipient}\n{secret}")
        self.stderr.write(
            f"Public key (paste into the policy's recipients): {recipient}\n"
            "The identity above is shown once: keep it offline (a password manager, a safe); restores and drills "
            "of encrypted backups need it (BACKUP_IDENTITY_FILE or --identity)."
        )

    # ------------------------------------------------------------ input

    def policy(self, name: str) -> BackupPolicy:
        try:
            return BackupPolicy.objects.get(name=name)
        except BackupPolicy.DoesNotExist:
            known = ", ".join(BackupPolicy.objects.order_by("name").values_list("name", flat=True)) or "none"
            raise CommandError(f"no backup policy named {name!r} (policies: {known})", returncode=EXIT_USAGE) from None

    def backup(self, pk: int) -> Backup:
        try:
            return Backup.objects.select_related("policy").get(pk=pk)
        except Backup.DoesNotExist:
            raise CommandError(f"no backup with ID {pk} (see `backup list`)", returncode=EXIT_USAGE) from None

    def identity(self, path: Path) -> str:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"cannot read the identity file {path}: {error}", returncode=EXIT_USAGE) from None
        if "AGE-SECRET-KEY-" not in text:
            raise CommandError(f"{path} holds no age identity (AGE-SECRET-KEY-...)", returncode=EXIT_USAGE)
        return text

    def confirm(self, backup: Backup) -> None:
        """Restoring in place overwrites live data: the operator types the policy's name (or passes --yes)."""
        name = backup.policy.name
        if not sys.stdin.isatty():
            raise CommandError("restoring in place needs a typed confirmation on a terminal; pass --yes to confirm "
                               "without one", returncode=EXIT_USAGE)  # fmt: skip
        self.stderr.write(
            f"This replaces the live databases and files with backup {backup.pk} ({backup.location}, "
            f"{backup.started_at:%Y-%m-%d %H:%M} UTC). A pre-restore backup is taken first.\n"
            f"Type the policy's name ({name}) to go on: ",
            ending="",
        )
        if input().strip() != name:
            raise CommandError("not confirmed: nothing was restored", returncode=EXIT_FAILED)

    # ------------------------------------------------------------ output

    def progress_bar(self) -> ProgressBar:
        return ProgressBar(self.stderr, enabled=self.stderr.isatty())

    def emit(self, data: Any, as_json: bool, say: Callable[[Any], None]) -> None:
        if as_json:
            self.stdout.write(jsonlib.dumps(data, indent=2, default=str))
        else:
            say(data)

    def say_backup(self, data: dict[str, Any]) -> None:
        text = (f"Backup {data['id']} of {data['policy']}: {data['status']}, {filesizeformat(data['size_bytes'])}, "
                f"verification {data['verification']}, at {data['location']}.")  # fmt: skip
        ok = data["status"] == Status.SUCCEEDED and data["verification"] != Verification.FAILED
        self.stdout.write(self.style.SUCCESS(text) if ok else self.style.ERROR(f"{text}\n  {data['error']}"))

    def say_restore(self, backup: Backup, result: restore.RestoreResult) -> None:
        where = "in place" if result.in_place else "into the target"
        self.stdout.write(self.style.SUCCESS(f"Restored backup {backup.pk} ({backup.location}) {where}."))
        if result.pre_restore_location:
            # The pre-restore backup's row may be gone (the restored database predates it); its files are not.
            self.stdout.write(f"What it replaced was backed up first: pre-restore backup at "
                              f"{result.pre_restore_location} (storage {backup.policy.storage}).")  # fmt: skip
        if result.migrations_differ:
            self.stdout.write(self.style.WARNING("Restored despite different migrations (--force): run migrate."))

    def say_list(self, rows: list[dict[str, Any]]) -> None:
        self.stdout.write("  ".join(title.ljust(width) for title, width in LIST_COLUMNS).rstrip())
        for row in rows:
            cells = [row["id"], row["policy"], f"{row['started_at']:%Y-%m-%d %H:%M:%S}", row["status"],
                     row["verification"], filesizeformat(row["size_bytes"]) if not row["pruned"] else "pruned",
                     row["trigger"], row["location"]]  # fmt: skip
            line = "  ".join(str(cell).ljust(width) for cell, (_, width) in zip(cells, LIST_COLUMNS, strict=True))
            self.stdout.write(line.rstrip())

    def say_verify(self, results: list[dict[str, Any]]) -> None:
        if not results:
            self.stdout.write(self.style.ERROR("Nothing to verify: no stored backup."))
        for result in results:
            what = f"backup {result['backup_id']}" if result["backup_id"] else f"a sample of {result['policy']}"
            if result["ok"]:
                self.stdout.write(self.style.SUCCESS(f"{what}: OK ({result['checked']} checked)."))
            else:
                self.stdout.write(self.style.ERROR(f"{what}: FAILED\n  " + "\n  ".join(result["errors"])))

    def say_drill(self, data: dict[str, Any]) -> None:
        style = self.style.SUCCESS if data["status"] == Status.SUCCEEDED else self.style.ERROR
        self.stdout.write(style(f"Drill of backup {data['backup_id']} ({data['policy']}): {data['status']}."))
        for check in data["checks"]:
            self.stdout.write(
                f"  {'ok  ' if check.get('ok') else 'FAIL'} {check.get('name')}: {check.get('detail', '')}"
            )
        if data["error"]:
            self.stdout.write(self.style.ERROR(f"  {data['error']}"))
