"""Failed-login throttling per username and per client IP.

Each attempt reserves a slot before the password is checked (an atomic cache
increment), so a burst of concurrent guesses gets no more password checks than
the limit; a success clears the username's count and gives the address its slot back. Past the limit, the username or
address is locked out for LOGIN_LOCKOUT_MINUTES and an auth.lockout event is
recorded once.
"""

import contextlib
import hashlib
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from apps.audit.models import Outcome
from apps.audit.services import record


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int = 0  # seconds, when not allowed


def _keys(username: str, ip: str | None) -> list[tuple[str, str]]:
    """(counter key, what it counts) for the username and, when known, the address."""
    digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    keys = [(f"opsportal:login:user:{digest}", "username")]
    if ip:
        keys.append((f"opsportal:login:ip:{ip}", "ip"))
    return keys


def reserve(username: str, ip: str | None) -> Decision:
    """May this attempt check a password? Counts it either way."""
    now = time.time()
    for key, _ in _keys(username, ip):
        locked_until = cache.get(f"{key}:locked")
        if locked_until and locked_until > now:
            return Decision(False, int(locked_until - now) + 1)
    for key, kind in _keys(username, ip):
        cache.add(key, 0, timeout=settings.LOGIN_FAILURE_WINDOW_MINUTES * 60)
        if cache.incr(key) > settings.LOGIN_FAILURE_LIMIT:
            return Decision(False, _lock(key, kind, username, ip))
    return Decision(True)


def succeeded(username: str, ip: str | None) -> None:
    """The right password clears the username's failures; the address only gets this attempt back."""
    for key, kind in _keys(username, ip):
        if kind == "username":
            cache.delete(key)
            continue
        with contextlib.suppress(ValueError):  # the counter expired meanwhile
            cache.decr(key)


def _lock(key: str, kind: str, username: str, ip: str | None) -> int:
    seconds = settings.LOGIN_LOCKOUT_MINUTES * 60
    if cache.add(f"{key}:locked", time.time() + seconds, timeout=seconds):
        record(
            "auth.lockout",
            outcome=Outcome.FAILURE,
            details={"by": kind, "username": username[:150], "ip": ip, "minutes": settings.LOGIN_LOCKOUT_MINUTES},
        )
    return seconds
