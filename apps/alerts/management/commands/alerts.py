"""`manage.py alerts`: raise and resolve alerts from scripts, list them, acknowledge, silence, test a channel, deliver.

Exit status: 0 done, 1 the thing failed or was not found, 2 a usage error (as
argparse: bad severity, label, matcher or duration).

Who acts: `fire` and `resolve --source/--key` speak for a producer (a script,
a cron job) and name nobody, as the health checks and metric rules do. `ack`,
`unack`, `resolve ID` and `silence` are a person's acts, and the services want a
user for them. The command has no Django login, and an operating-system user
whose name happens to equal a portal username is not that person; so the acts
are made as a service account named the way manage.py's context names the
command's caller everywhere else in the audit trail, "cli:<OS user>" ("cli"
under call_command). It is created on first use, inactive and without a usable
password: it records who, it cannot sign in. (A ":" cannot occur in a username
made through the admin, so it never collides with a person's account.)
"""

import json as jsonlib
from argparse import ArgumentTypeError
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.alerts import delivery, matchers, render, services
from apps.alerts.forms import parse_duration
from apps.alerts.models import Alert, Notification, NotificationChannel, Severity, Silence, State
from apps.core import context

CLI_USERNAME = "cli"
LIST_COLUMNS = [("ID", 6), ("STATE", 12), ("SEVERITY", 8), ("SOURCE/KEY", 36), ("EP", 3), ("FIRED", 5),
                ("LAST FIRED", 16), ("SIL", 3), ("SUMMARY", 0)]  # fmt: skip


def label(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep:
        raise ArgumentTypeError(f"{text!r} is not a label: write name=value")
    if not matchers.LABEL_NAME.fullmatch(name):
        raise ArgumentTypeError(f"{name!r} is not a label name: a letter or _, then letters, digits, _ . : -")
    return name, value


def matcher(text: str) -> str:
    try:
        return str(matchers.parse(text))
    except matchers.MatcherError as exc:
        raise ArgumentTypeError(str(exc)) from None


def duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ArgumentTypeError(str(exc)) from None


def observed(text: str) -> Any:
    """--value: a number (or any JSON) when it reads as one, else the text."""
    try:
        return jsonlib.loads(text)
    except ValueError:
        return text


def cli_user() -> AbstractBaseUser:
    """The account a person's acts from the command line are made as (see the module's docstring)."""
    caller = context.current()
    name = caller.username if caller.channel == "cli" and caller.username.startswith("cli:") else CLI_USERNAME
    users = get_user_model()
    user, _ = users.objects.get_or_create(
        **{users.USERNAME_FIELD: name}, defaults={"is_active": False, "password": make_password(None)}
    )
    return user


class Command(BaseCommand):
    help = "Work with alerts: fire, resolve, list, ack, unack, silence, test-channel, deliver."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(
            dest="subcommand", required=True, metavar="{fire,resolve,list,ack,unack,silence,test-channel,deliver}"
        )
        fire = commands.add_parser("fire", help="Raise an alert, or update it while it is open (no new notification).")
        fire.add_argument("--source", required=True, help="Who raises it, e.g. cron, backup-script.")
        fire.add_argument("--key", required=True, help="What it is about, unique within the source.")
        fire.add_argument("--severity", required=True, type=str.lower, choices=Severity.values, help="How bad.")
        fire.add_argument("--summary", required=True, help="One line saying what is wrong.")
        fire.add_argument("--description", default="", help="More detail, shown in notifications.")
        fire.add_argument("--label", type=label, action="append", default=[], metavar="NAME=VALUE",
                          help="A label for routing, grouping and silences; repeat for more.")  # fmt: skip
        fire.add_argument("--value", type=observed, help="The observed value (a number, or text).")
        fire.add_argument("--json", action="store_true", help="Print the alert as JSON.")

        resolve = commands.add_parser(
            "resolve", help="Resolve an alert by id (a person's act) or by --source and --key (a producer's)."
        )
        resolve.add_argument("id", nargs="?", type=int, help="The alert's id.")
        resolve.add_argument("--source", help="With --key: the alert raised with this source.")
        resolve.add_argument("--key", help="With --source: the alert raised with this key.")
        resolve.add_argument("--comment", default="", help="Why, for the alert's timeline.")
        resolve.add_argument("--json", action="store_true", help="Print the alert as JSON.")

        listing = commands.add_parser("list", help="List alerts, most recently fired first.")
        listing.add_argument("--state", choices=State.values, help="Only alerts in this state.")
        listing.add_argument("--source", help="Only alerts from this source.")
        listing.add_argument("--limit", type=int, default=200, help="At most this many (default 200).")
        listing.add_argument("--json", action="store_true", help="Print a JSON list.")

        for name, what in (
            ("ack", "Acknowledge a firing alert: escalation and reminders stop."),
            ("unack", "Take back an acknowledgement: the alert fires and escalates again."),
        ):
            person = commands.add_parser(name, help=what)
            person.add_argument("id", type=int, help="The alert's id.")
            person.add_argument("--comment", default="", help="For the alert's timeline.")
            person.add_argument("--json", action="store_true", help="Print the alert as JSON.")

        silence = commands.add_parser("silence", help="Silence matching alerts for a while: recorded, nobody told.")
        silence.add_argument("--match", type=matcher, action="append", required=True, metavar="MATCHER",
                             help="name=value, name!=value, name=~regex or name!~regex; name is source, key, "
                                  "severity or a label. Repeat: all must match.")  # fmt: skip
        silence.add_argument("--for", dest="length", type=duration, required=True, metavar="DURATION",
                             help="How long from now: 30m, 2h, 1d.")  # fmt: skip
        silence.add_argument("--comment", required=True, help="Why (shown with the silence).")
        silence.add_argument("--json", action="store_true", help="Print the silence as JSON.")

        test = commands.add_parser("test-channel", help="Send a test notification now; exit 1 if it was not delivered.")
        test.add_argument("name", help="The channel's name.")
        test.add_argument("--json", action="store_true", help="Print the result as JSON.")

        deliver = commands.add_parser(
            "deliver",
            help="One pass now, in this process: due group notifications, escalations, reminders and deliveries.",
        )
        deliver.add_argument("--json", action="store_true", help="Print what was done as JSON.")

    def handle(self, *args: object, **options: Any) -> None:
        getattr(self, f"handle_{options['subcommand'].replace('-', '_')}")(**options)

    # ------------------------------------------------------------ producers

    def handle_fire(self, *, source: str, key: str, severity: str, summary: str, description: str,
                    label: list[tuple[str, str]], value: Any, json: bool, **options: Any) -> None:  # fmt: skip
        try:
            alert = services.alert_fire(source=source, key=key, severity=severity, summary=summary,
                                        description=description, labels=dict(label), value=value)  # fmt: skip
        except services.AlertError as exc:
            raise CommandError(str(exc), returncode=2) from None
        self.show(alert, json, f"fired ({plural(alert.fire_count, 'time')} in episode {alert.episode})")

    def handle_resolve(
        self, *, id: int | None, source: str | None, key: str | None, comment: str, json: bool, **options: Any
    ) -> None:
        by_name = source is not None or key is not None
        if (id is not None) == by_name or (by_name and not (source and key)):
            raise CommandError("give either an alert id or both --source and --key", returncode=2)
        if id is not None:
            alert = self.find(id)
            if not alert.is_open:
                return self.show(alert, json, "was already resolved")
            alert = services.alert_resolve(source=alert.source, key=alert.key, actor=cli_user(), comment=comment)
        else:
            alert = services.alert_resolve(source=source, key=key, comment=comment)
            if alert is None:
                raise CommandError(f"no alert with source {source!r} and key {key!r}")
        self.show(alert, json, "resolved")

    # ------------------------------------------------------------ people

    def handle_list(self, *, state: str | None, source: str | None, limit: int, json: bool, **options: Any) -> None:
        alerts = Alert.objects.all()
        if state:
            alerts = alerts.filter(state=state)
        if source:
            alerts = alerts.filter(source=source)
        rows = list(alerts.order_by("-last_fired_at", "-pk")[: max(limit, 0)])
        if json:
            self.stdout.write(jsonlib.dumps([render.describe(alert) for alert in rows], indent=2))
            return
        self.stdout.write(table(rows))
        if rows and len(rows) == limit:
            self.stderr.write(f"(the first {limit}; --limit shows more)")

    def handle_ack(self, *, id: int, comment: str, json: bool, **options: Any) -> None:
        alert = self.find(id)
        if services.alert_acknowledge(alert, actor=cli_user(), comment=comment):
            return self.show(self.find(id), json, "acknowledged")
        self.refuse(self.find(id), json, State.ACKNOWLEDGED, "acknowledge")

    def handle_unack(self, *, id: int, comment: str, json: bool, **options: Any) -> None:
        alert = self.find(id)
        if services.alert_unacknowledge(alert, actor=cli_user(), comment=comment):
            return self.show(self.find(id), json, "firing again (acknowledgement taken back)")
        self.refuse(self.find(id), json, State.FIRING, "unacknowledge")

    def handle_silence(self, *, match: list[str], length: timedelta, comment: str, json: bool, **options: Any) -> None:
        now = timezone.now()
        silence = Silence.objects.create(
            matchers=match, starts_at=now, ends_at=now + length, comment=comment, created_by=cli_user()
        )
        data = {"id": silence.pk, "matchers": silence.matchers, "starts_at": silence.starts_at.isoformat(),
                "ends_at": silence.ends_at.isoformat(), "comment": silence.comment}  # fmt: skip
        if json:
            self.stdout.write(jsonlib.dumps(data, indent=2))
        else:
            until = timezone.localtime(silence.ends_at)
            self.stdout.write(f"Silence {silence.pk}: {', '.join(match)} until {until:%Y-%m-%d %H:%M %Z}.")

    # ------------------------------------------------------------ delivery

    def handle_test_channel(self, *, name: str, json: bool, **options: Any) -> None:
        channel = NotificationChannel.objects.filter(name=name).first()
        if channel is None:
            known = ", ".join(NotificationChannel.objects.values_list("name", flat=True)[:20]) or "none"
            raise CommandError(f"no channel named {name!r} (channels: {known})")
        notification = delivery.send_test(channel)
        delivered = notification.status == Notification.Status.DELIVERED
        if json:
            self.stdout.write(jsonlib.dumps({"channel": channel.name, "delivered": delivered,
                                             "status": notification.status, "http_status": notification.last_status,
                                             "error": notification.last_error}, indent=2))  # fmt: skip
        elif delivered:
            self.stdout.write(self.style.SUCCESS(f"Test notification delivered to {channel.name}."))
        else:
            error = notification.last_error or "the channel's rate limit is reached"
            retried = " (it stays queued and is retried)" if notification.status == Notification.Status.PENDING else ""
            self.stderr.write(self.style.ERROR(f"Test notification to {channel.name} failed: {error}{retried}"))
        if not delivered:
            raise SystemExit(1)

    def handle_deliver(self, *, json: bool, **options: Any) -> None:
        done = services.tick()
        done["dispatched"] = delivery.sweep(inline=True)
        if json:
            self.stdout.write(jsonlib.dumps(done, indent=2))
            return
        self.stdout.write(
            f"{plural(done['groups'], 'group')} notified, {plural(done['escalations'], 'escalation')}, "
            f"{plural(done['reminders'], 'reminder')}; {done['dispatched']} due "
            f"notification{'' if done['dispatched'] == 1 else 's'} sent from here or given up."
        )

    # ------------------------------------------------------------ helpers

    def find(self, pk: int) -> Alert:
        alert = Alert.objects.filter(pk=pk).first()
        if alert is None:
            raise CommandError(f"no alert with id {pk}")
        return alert

    def show(self, alert: Alert, json: bool, what: str) -> None:
        if json:
            self.stdout.write(jsonlib.dumps(render.describe(alert), indent=2))
        else:
            self.stdout.write(
                f"Alert {alert.pk} {what}: {alert.state}, [{alert.severity}] {alert.fingerprint}: {alert.summary}"
            )

    def refuse(self, alert: Alert, json: bool, same: str, verb: str) -> None:
        """Nothing changed: fine if the alert is already where it was asked to go, a failure if it is resolved."""
        if alert.state == same:
            return self.show(alert, json, f"is already {same}")
        raise CommandError(f"alert {alert.pk} is {alert.state}: nothing to {verb}")


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def table(alerts: Iterable[Alert]) -> str:
    lines = ["  ".join(title.ljust(width) for title, width in LIST_COLUMNS).rstrip()]
    for alert in alerts:
        cells = [str(alert.pk), alert.state, alert.severity, alert.fingerprint, str(alert.episode),
                 str(alert.fire_count), f"{timezone.localtime(alert.last_fired_at):%Y-%m-%d %H:%M}",
                 "yes" if alert.silenced_by_id else "", alert.summary]  # fmt: skip
        lines.append("  ".join(fit(cell, width) for cell, (_, width) in zip(cells, LIST_COLUMNS, strict=True)))
    if len(lines) == 1:
        return "No alerts."
    return "\n".join(line.rstrip() for line in lines)


def fit(text: str, width: int) -> str:
    if not width:
        return text
    return text.ljust(width) if len(text) <= width else f"{text[: width - 1]}…"
