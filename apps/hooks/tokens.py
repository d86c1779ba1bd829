"""API tokens: made (shown once), looked up by digest, revoked; every creation and revocation audited.

A token is `opsp_` and 43 URL-safe characters (256 random bits). Only its
SHA-256 digest is stored; its first characters are kept to tell tokens apart.
"""

import copy
import hashlib
import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from apps.core.epochs import Epoch
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
    """Revoke at once (audited by the row's change); False if it was already revoked.

    Every web process refuses it from the commit on, including those that reuse tokens (see tokens_changed).
    """
    revoked = bool(ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=Now()))
    tokens_changed()
    return revoked


def token_authenticate(presented: str, *, ip: str | None) -> ApiToken | None:
    """The active token `presented` is, with its user; None for anything else. Records its use (throttled)."""
    if not presented.startswith(TOKEN_PREFIX) or len(presented) > 200:
        return None
    now = timezone.now()
    token = _lookup(digest(presented))
    if token is None or not token.is_active(now) or not token.user.is_active:
        return None
    if token.last_used_at is None or now - token.last_used_at >= USE_RECORDED_EVERY or token.last_used_ip != ip:
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - USE_RECORDED_EVERY) | ~Q(last_used_ip=ip)
        ).update(last_used_at=now, last_used_ip=ip)
        remembered = _recent.get(token.digest)
        if remembered is not None:  # so that the next requests do not write it again
            remembered[2].last_used_at, remembered[2].last_used_ip = now, ip
    return token


# Tokens this process looked up lately, by digest: (when, the epoch then, row with its user). Reused for
# API_TOKEN_CACHE_SECONDS while the shared epoch is unchanged.
_recent: dict[str, tuple[float, int, ApiToken]] = {}
RECENT_MAX = 10_000
# A new value whenever a token or a user changed, which makes every web process look its tokens up again. Read
# by each request that may reuse a token (with the other epochs, in one round trip: apps.core.epochs).
EPOCH = Epoch("api-tokens:epoch")


def tokens_changed(**_signal: object) -> None:
    """A token or a user changed: once the transaction commits, no process reuses a token it looked up before.

    Also the receiver of post_save / post_delete of tokens and users (apps.py)."""
    _recent.clear()
    EPOCH.move_on_commit()


def _lookup(hashed: str) -> ApiToken | None:
    """The token row with its user; a copy of this process's recent one when it may be reused."""
    keep = settings.API_TOKEN_CACHE_SECONDS
    epoch = EPOCH.read() if keep else None
    remembered = _recent.get(hashed) if epoch is not None else None
    if remembered is not None and remembered[1] == epoch and time.monotonic() - remembered[0] < keep:
        return _copied(remembered[2])
    try:  # get(): no ORDER BY to build, the digest being unique
        token = ApiToken.objects.select_related("user").get(digest=hashed)
    except ApiToken.DoesNotExist:
        return None
    if epoch is None:
        return token
    if len(_recent) >= RECENT_MAX:
        _recent.clear()
    _recent[hashed] = (time.monotonic(), epoch, token)
    return _copied(token)


def _copied(token: ApiToken) -> ApiToken:
    # Each request its own copy: one may set attributes on its user (permission caches...) others must not see.
    copied = copy.copy(token)
    copied.user = copy.copy(token.user)
    return copied
