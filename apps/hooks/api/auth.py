"""Who may call the API: a bearer API token, or a staff member's session (with CSRF for writes).

A token acts as its user, narrowed to its scope: GET/HEAD/OPTIONS need `read`,
everything else `write`. Each caller (a token, or a session's user) has a rate
limit per minute, counted in the cache (Redis in production, so shared by every
web process): over it, 429 with Retry-After. The request context then names the
caller, so audit events and log lines of API calls say who and "api".
"""

import dataclasses
import time
from http import HTTPStatus
from typing import Any

import structlog
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.cache import caches
from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware
from ninja.security import APIKeyCookie, HttpBearer
from redis import RedisError

from apps.core import context
from apps.core.cache import redis_of
from apps.core.repeats import Repeated
from apps.hooks import tokens
from apps.hooks.api.problems import ApiError
from apps.hooks.models import ApiToken, Scope

logger = structlog.get_logger(__name__)
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WINDOW_SECONDS = 60
_uncounted = Repeated(logger, "api_rate_limit_unavailable")  # with Redis down, every request would say so


@dataclasses.dataclass(frozen=True)
class Caller:
    user: AbstractBaseUser
    token: ApiToken | None  # None: a staff session


class TokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Caller | None:
        row = tokens.token_authenticate(token.strip(), ip=request.META.get("REMOTE_ADDR") or None)
        if row is None:
            return None
        return admit(request, row.user, row)


class StaffSession(APIKeyCookie):
    """Django's session, for staff only; an unsafe method must carry the CSRF token as in the admin."""

    param_name = settings.SESSION_COOKIE_NAME

    def __call__(self, request: HttpRequest) -> Caller | None:
        user = getattr(request, "user", None)
        if user is None or not (user.is_authenticated and user.is_active and user.is_staff):
            return None
        if request.method not in READ_METHODS and not getattr(request, "_ninja_csrf_exempt", False):
            reason = CsrfViewMiddleware(lambda request: None).process_view(request, None, (), {})
            if reason is not None:
                raise ApiError(
                    HTTPStatus.FORBIDDEN, "CSRF check failed: send the csrftoken cookie's value in X-CSRFToken."
                )
        return admit(request, user, None)

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:  # pragma: no cover - __call__ decides
        return None


def admit(request: HttpRequest, user: AbstractBaseUser, token: ApiToken | None) -> Caller:
    """Check scope and rate, then make `user` the request's user and the context's actor."""
    needed = Scope.READ if request.method in READ_METHODS else Scope.WRITE
    if token is not None and not token.allows(needed):
        raise ApiError(HTTPStatus.FORBIDDEN, f"This token's scope is {token.scope}; this request needs {needed}.")
    # A token by its digest's start, unique across databases too (test runs share one Redis).
    _count(f"t{token.digest[:16]}" if token is not None else f"u{user.pk}")
    request.user = user
    request.api_token = token
    context.activate(
        dataclasses.replace(context.current(), user_id=user.pk, username=user.get_username(), channel="api")
    )
    return Caller(user=user, token=token)


def require(request: HttpRequest, permission: str) -> None:
    """403 unless the caller's user has `permission` (app_label.codename)."""
    if not request.user.has_perm(permission):
        raise ApiError(HTTPStatus.FORBIDDEN, f"This needs the {permission} permission.")


def _count(caller: str) -> None:
    limit = settings.API_RATE_LIMIT_PER_MINUTE
    if not limit:
        return
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    try:
        used = _counted(f"api-rate:{caller}:{window}")
    except (RedisError, OSError):
        # Redis down (the health checks say so): the API stays up for the people handling the outage, unlimited.
        _uncounted.warning(exc_info=True)
        return
    if used > limit:
        retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))
        raise ApiError(
            HTTPStatus.TOO_MANY_REQUESTS,
            f"More than {limit} requests a minute for this caller; retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )


def _counted(key: str) -> int:
    """Add this request to the window's count; the count after it."""
    backend = caches["default"]
    redis = redis_of(backend)
    if redis is not None:
        # One round trip, where Django's cache API takes two to four (incr is EXISTS then INCRBY; a window's
        # first request adds SET NX): the window starts at 0 unless it has begun, then counts this request.
        name = backend.make_and_validate_key(key)
        _, used = redis.pipeline(transaction=False).set(name, 0, ex=WINDOW_SECONDS * 2, nx=True).incr(name).execute()
        return used
    try:
        return backend.incr(key)
    except ValueError:  # the window's first request
        return 1 if backend.add(key, 1, timeout=WINDOW_SECONDS * 2) else backend.incr(key)
