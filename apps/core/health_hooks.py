"""Health checks offered by apps that the health app may not import (its siblings: backups).

health and the other producers are one layer (ARCHITECTURE.md): neither imports
the other. A producer registers its check here, in core, in its AppConfig.ready();
the health app includes every check registered here in its own registry, asked
each time the list is read, so the order in which apps become ready does not
matter. A check returns (status, message, details) with status one of "ok",
"warning", "critical", "unknown"; it may raise (the check is then critical).
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

STATUSES = ("ok", "warning", "critical", "unknown")
# What the health registry accepts for a check: see apps.health.checks.base.Check. `alerts=False`
# is for a producer that fires its own alerts, so the health check does not fire a second one.
OPTIONS = frozenset({"for_seconds", "alert_on", "timeout", "description", "alerts"})

CheckFunction = Callable[[], tuple[str, str, dict[str, Any]]]


@dataclass(frozen=True)
class HookedCheck:
    name: str
    check: CheckFunction
    options: dict[str, Any] = field(default_factory=dict)


_checks: dict[str, HookedCheck] = {}
_lock = threading.Lock()


def register(name: str, check: CheckFunction, **options: Any) -> None:
    """Offer `check` to the health app under `name` (replacing one of that name: ready() may run again)."""
    unknown = set(options) - OPTIONS
    if unknown:
        raise TypeError(f"unknown health check options {sorted(unknown)}; known: {sorted(OPTIONS)}")
    if options.get("alert_on", "critical") not in STATUSES:
        raise ValueError(f"alert_on must be one of {STATUSES}")
    with _lock:
        _checks[name] = HookedCheck(name, check, dict(options))


def registered() -> list[HookedCheck]:
    with _lock:
        return list(_checks.values())
