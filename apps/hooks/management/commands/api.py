"""`manage.py api token create|list|revoke`: API tokens for scripts and tools.

Exit status: 0 done (revoking a revoked token too: it is revoked), 1 not found
(revoke of an unknown token), 2 a usage error (unknown user, bad scope or
expiry). A created token is printed once, on its own line (or as "token" in
--json); only its digest is stored. Creation and revocation are audited (the
database trigger on ApiToken) as the command's caller, "cli:<OS user>".
"""

import json
import re
from argparse import ArgumentTypeError
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q
from django.utils import timezone

from apps.alerts.forms import parse_duration
from apps.hooks import tokens
from apps.hooks.models import ApiToken, Scope

PREFIX_LENGTH = len(tokens.TOKEN_PREFIX) + tokens.SHOWN_RANDOM  # of an API token's shown prefix
YEARS = re.compile(r"^\s*([1-9]\d?)\s*y\s*$", re.IGNORECASE)  # 1y .. 99y, as the admin offers 1 year


def expiry(text: str) -> timedelta | None:
    if text.strip().lower() == "never":
        return None
    years = YEARS.match(text)
    if years:
        return timedelta(days=365 * int(years.group(1)))
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ArgumentTypeError(f"{exc}, or years (1y), or 'never'") from None


def described(token: ApiToken, now: datetime) -> dict[str, Any]:
    return {
        "id": token.pk,
        "name": token.name,
        "user": token.user.get_username(),
        "scope": token.scope,
        "prefix": token.prefix,
        "created_at": token.created_at.isoformat() if token.created_at else None,
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
        "last_used_ip": token.last_used_ip,
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
        "active": token.is_active(now),
    }


class Command(BaseCommand):
    help = "API tokens: create (shown once), list, revoke."

    def add_arguments(self, parser: CommandParser) -> None:
        nouns = parser.add_subparsers(dest="noun", required=True, metavar="{token}")
        token = nouns.add_parser("token", help="API tokens for /api/v1/.")
        verbs = token.add_subparsers(dest="verb", required=True, metavar="{create,list,revoke}")

        create = verbs.add_parser("create", help="Make a token for a user and print it (once).")
        create.add_argument("--user", required=True, help="The username the token acts as.")
        create.add_argument("--scope", required=True, choices=Scope.values, help="read, or write (read and write).")
        create.add_argument("--expires", type=expiry, default=timedelta(days=90), metavar="DURATION",
                            help="Lifetime: 30m, 12h, 90d (default), 1y, or 'never'.")  # fmt: skip
        create.add_argument("--name", default="", help="What it is for (default: cli-<user>).")
        create.add_argument("--json", action="store_true", help="Print the token and its details as JSON.")

        listing = verbs.add_parser("list", help="List tokens (never the tokens themselves).")
        listing.add_argument("--user", help="Only this user's tokens.")
        listing.add_argument("--all", action="store_true", help="Include revoked and expired tokens.")
        listing.add_argument("--json", action="store_true", help="Print a JSON list.")

        revoke = verbs.add_parser("revoke", help="Revoke a token at once, by id or prefix.")
        revoke.add_argument("token", help="The token's id, its prefix (opsp_xxxxxx) or the token itself.")
        revoke.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['verb']}")(options)

    def _create(self, options: dict[str, Any]) -> None:
        user = self._user(options["user"])
        try:
            row, token = tokens.token_create(
                user=user, name=options["name"] or f"cli-{user.get_username()}", scope=options["scope"],
                expires_in=options["expires"],
            )  # fmt: skip
        except tokens.TokenError as exc:
            raise CommandError(str(exc), returncode=2) from None
        row.refresh_from_db()
        if options["json"]:
            self.stdout.write(json.dumps({**described(row, timezone.now()), "token": token}, indent=2))
            return
        expires = f"expires {row.expires_at:%Y-%m-%d %H:%M} UTC" if row.expires_at else "never expires"
        self.stderr.write(f"Token {row.pk} for {user.get_username()} ({row.scope}), {expires}. Shown only now:")
        self.stdout.write(token)

    def _list(self, options: dict[str, Any]) -> None:
        now = timezone.now()
        rows = ApiToken.objects.select_related("user").order_by("pk")
        if options["user"]:
            rows = rows.filter(user=self._user(options["user"]))
        found = [described(row, now) for row in rows if options["all"] or row.is_active(now)]
        if options["json"]:
            self.stdout.write(json.dumps(found, indent=2))
            return
        self.stdout.write(f"{'ID':>5}  {'PREFIX':12}  {'USER':16}  {'SCOPE':5}  {'EXPIRES':16}  {'LAST USED':16}  NAME")
        for item in found:
            self.stdout.write(
                f"{item['id']:>5}  {item['prefix']:12}  {item['user'][:16]:16}  {item['scope']:5}  "
                f"{when(item['expires_at'], 'never'):16}  {when(item['last_used_at'], '-'):16}  {item['name']}"
                + ("" if item["active"] else "  (inactive)")
            )

    def _revoke(self, options: dict[str, Any]) -> None:
        given = options["token"].strip()
        matches = list(ApiToken.objects.filter(self._lookup(given))[:2])
        if len(matches) != 1:
            raise CommandError(
                f"no token {shown(given)}" if not matches else f"{shown(given)} matches several tokens: give its id"
            )
        revoked = tokens.token_revoke(matches[0])
        if options["json"]:
            self.stdout.write(json.dumps({"id": matches[0].pk, "revoked": revoked}))
        else:
            self.stdout.write(
                f"Token {matches[0].pk} revoked." if revoked else f"Token {matches[0].pk} was already revoked."
            )

    @staticmethod
    def _user(username: str) -> AbstractBaseUser:
        users = get_user_model()
        user = users.objects.filter(**{users.USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f"no user {username!r}", returncode=2)
        return user

    @staticmethod
    def _lookup(given: str) -> Q:
        """An id (one that fits a row's id: a longer number matches nothing), a prefix, or the whole token."""
        if given.isdigit():
            return Q(pk=int(given)) if len(given) < 19 else Q(pk__in=[])
        if len(given) > PREFIX_LENGTH:  # longer than a prefix: the token itself, pasted
            return Q(digest=tokens.digest(given))
        return Q(prefix=given)


def when(iso: str | None, otherwise: str) -> str:
    return iso[:16].replace("T", " ") if iso else otherwise


def shown(given: str) -> str:
    """What the caller gave, for an error message: never a whole token."""
    return repr(given if len(given) <= PREFIX_LENGTH else given[:PREFIX_LENGTH] + "…")
