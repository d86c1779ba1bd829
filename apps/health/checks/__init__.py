"""Health checks: the contract (base) and the built-in checks, registered when the app is ready."""

from apps.health.checks.base import (
    Check,
    Outcome,
    Result,
    Status,
    UnknownCheckError,
    critical,
    graded,
    ok,
    register,
    registry,
    unknown,
    warning,
    worst,
)

__all__ = [
    "Check",
    "Outcome",
    "Result",
    "Status",
    "UnknownCheckError",
    "critical",
    "graded",
    "ok",
    "register",
    "registry",
    "unknown",
    "warning",
    "worst",
]
