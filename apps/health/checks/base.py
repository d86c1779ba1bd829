"""The contract every check keeps: a Status, an Outcome from the check, a Result from the runner, a registry.

A check is a function of no arguments that returns an Outcome (ok(), warning(),
critical(), unknown()) or raises; the runner (apps.health.runner) times it,
bounds it by its timeout and turns it into a Result. Checks are registered by
name with their alerting options: how long they must stay bad (`for_seconds`),
from which status on that is bad (`alert_on`), and their own timeout.

Built-in checks register on import; checks whose list depends on the
configuration or the database (one per database alias, one per HealthTarget)
come from providers, asked each time the list is needed.
"""

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models

NAME_MAX_LENGTH = 200


class Status(models.TextChoices):
    """Ordered by badness: unknown (could not tell) is worse than ok and better than warning."""

    OK = "ok"
    UNKNOWN = "unknown"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: "Status | str") -> bool:
        return self.rank >= Status(other).rank


_RANK = {Status.OK: 0, Status.UNKNOWN: 1, Status.WARNING: 2, Status.CRITICAL: 3}


def worst(statuses: Iterable[Status | str]) -> Status:
    """The worst of statuses; unknown when there are none (nothing has been checked)."""
    found = [Status(status) for status in statuses]
    return max(found, key=lambda status: status.rank) if found else Status.UNKNOWN


@dataclass(frozen=True)
class Outcome:
    """What a check function returns."""

    status: Status
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def ok(message: str, **details: Any) -> Outcome:
    return Outcome(Status.OK, message, details)


def warning(message: str, **details: Any) -> Outcome:
    return Outcome(Status.WARNING, message, details)


def critical(message: str, **details: Any) -> Outcome:
    return Outcome(Status.CRITICAL, message, details)


def unknown(message: str, **details: Any) -> Outcome:
    return Outcome(Status.UNKNOWN, message, details)


def graded(value: float, warn_at: float, critical_at: float) -> Status:
    """critical when value >= critical_at, warning when >= warn_at, else ok."""
    if value >= critical_at:
        return Status.CRITICAL
    if value >= warn_at:
        return Status.WARNING
    return Status.OK


@dataclass(frozen=True)
class Result:
    """One check's answer at one time: what the runner returns and what is stored."""

    name: str
    status: Status
    message: str  # one line
    latency_ms: float
    details: dict[str, Any]
    checked_at: datetime  # aware, when the check started

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the shape of `health --json`, /health/ and the `health` broadcast."""
        return {
            "name": self.name,
            "status": str(self.status),
            "message": self.message,
            "latency_ms": round(self.latency_ms, 1),
            "details": self.details,
            "checked_at": self.checked_at.isoformat(),
        }


@dataclass(frozen=True)
class Check:
    """A registered check: its function and how it is run and alerted on."""

    name: str
    func: Callable[[], Outcome]
    for_seconds: int | None = None  # None: HEALTH_FOR_SECONDS
    alert_on: Status = Status.CRITICAL  # this status or worse, for longer than for_seconds, fires an alert
    timeout: float | None = None  # seconds; None: HEALTH_CHECK_TIMEOUT_SECONDS
    interval: int | None = None  # seconds between scheduled runs; None: every run
    description: str = ""
    alerts: bool = True  # False: a check whose app fires its own alerts (backups); health fires none for it

    @property
    def effective_for(self) -> int:
        return settings.HEALTH_FOR_SECONDS if self.for_seconds is None else self.for_seconds

    @property
    def effective_timeout(self) -> float:
        return float(settings.HEALTH_CHECK_TIMEOUT_SECONDS if self.timeout is None else self.timeout)


class UnknownCheckError(ValueError):
    """A name that no check has; the message lists the known ones."""


class Registry:
    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}
        self._providers: list[Callable[[], Iterable[Check]]] = []
        self._lock = threading.Lock()

    def register(
        self,
        name: str,
        *,
        for_seconds: int | None = None,
        alert_on: Status = Status.CRITICAL,
        timeout: float | None = None,
        description: str = "",
    ) -> Callable[[Callable[[], Outcome]], Callable[[], Outcome]]:
        """Decorator: register the function as the check `name` (replacing one of that name)."""
        _validate(name, timeout)

        def decorate(func: Callable[[], Outcome]) -> Callable[[], Outcome]:
            check = Check(name, func, for_seconds, Status(alert_on), timeout, None, description or _doc(func))
            with self._lock:
                self._checks[name] = check
            return func

        return decorate

    def unregister(self, name: str) -> None:
        with self._lock:
            self._checks.pop(name, None)

    def provider(self, func: Callable[[], Iterable[Check]]) -> Callable[[], Iterable[Check]]:
        """Decorator: func returns checks made from the configuration or the database, asked each time."""
        with self._lock:
            self._providers.append(func)
        return func

    def checks(self) -> list[Check]:
        """Every check now, sorted by name (a provider's check shadows nothing: names are its own)."""
        with self._lock:
            found = dict(self._checks)
            providers = list(self._providers)
        for provide in providers:
            for check in provide():
                found.setdefault(check.name, check)
        return sorted(found.values(), key=lambda check: check.name)

    def select(self, names: Iterable[str] | None = None) -> list[Check]:
        """The checks named (all when names is None), or UnknownCheckError naming those that do not exist."""
        every = self.checks()
        if names is None:
            return every
        by_name = {check.name: check for check in every}
        wanted = list(dict.fromkeys(names))
        missing = [name for name in wanted if name not in by_name]
        if missing:
            raise UnknownCheckError(
                f"no check named {', '.join(repr(name) for name in missing)} (checks: {', '.join(by_name) or 'none'})"
            )
        return [by_name[name] for name in wanted]


def _validate(name: str, timeout: float | None) -> None:
    if not name or len(name) > NAME_MAX_LENGTH or not name.isprintable() or name != name.strip():
        raise ValueError(f"{name!r} is not a check name: 1 to {NAME_MAX_LENGTH} printable characters")
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"the timeout of {name!r} must be a positive number of seconds")


def _doc(func: Callable) -> str:
    return (func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else ""


registry = Registry()
register = registry.register
