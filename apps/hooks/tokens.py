"""API tokens: made (shown once), looked up by digest, revoked; every creation and revocation audited.

A token is `opsp_` and 43 URL-safe characters (256 random bits). Only its
SHA-256 digest is stored; its first characters are kept to tell tokens apart.
"""

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from apps.hooks.models import ApiToken, Scope

TOKEN_PREFIX = "opsp_"  # noqa: S105 - the visible start of every token, not a secret
SHOWN_RANDOM = 6  # random characters kept (and shown) after the prefix, to tell tokens apart
# last_used_at is written at most this often per token: a read must not be a write each time.
USE_RECORDED_EVERY = timedelta(seconds=60)


class TokenError(ValueError):
    """Bad input to a token service; the message is meant for the caller's user."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret(prefix: str = TOKEN_PREFIX) -> tuple[str, str, str]:
    """(token, its shown prefix, its digest) for a fresh random token."""
    token = prefix + secrets.token_urlsafe(32)
    return token, token[: len(prefix) + SHOWN_RANDOM], digest(token)


@transaction.atomic
def token_create(
    *,
    user: AbstractBaseUser,
    name: str,
    scope: str = Scope.READ,
    expires_in: timedelta | None = None,
    actor: AbstractBaseUser | None = None,
) -> tuple[ApiToken, str]:
    """A new token for `user`; returns the row and the token itself, which is never shown again."""
    name = str(name).strip()
    if not name or len(name) > 100:
        raise TokenError("name must be 1 to 100 characters")
    if scope not in Scope.values:
        raise TokenError(f"scope must be one of {', '.join(Scope.values)}")
    if not user.is_active:
        raise TokenError(f"user {user.get_username()!r} is inactive")
    if expires_in is not None and expires_in <= timedelta(0):
        raise TokenError("expiry must be in the future")
    token, prefix, hashed = new_secret()
    row = ApiToken.objects.create(
        name=name,
        user=user,
        scope=scope,
        prefix=prefix,
        digest=hashed,
        created_by=actor,
        expires_at=timezone.now() + expires_in if expires_in is not None else None,
    )
    return row, token


def token_revoke(token: ApiToken) -> bool:
    """Revoke at once (audited by the row's change); False if it was already revoked."""
    return bool(ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=Now()))


def token_authenticate(presented: str, *, ip: str | None) -> ApiToken | None:
    """The active token `presented` is, with its user; None for anything else. Records its use (throttled)."""
    if not presented.startswith(TOKEN_PREFIX) or len(presented) > 200:
        return None
    now = timezone.now()
    token = ApiToken.objects.select_related("user").filter(digest=digest(presented)).first()
    if token is None or not token.is_active(now) or not token.user.is_active:
        return None
    if token.last_used_at is None or now - token.last_used_at >= USE_RECORDED_EVERY or token.last_used_ip != ip:
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - USE_RECORDED_EVERY) | ~Q(last_used_ip=ip)
        ).update(last_used_at=now, last_used_ip=ip)
    return token
