"""Thresholds from settings, shared by the built-in checks."""

import time

from django.conf import settings

from apps.health.checks.base import Status, graded


def latency_status(ms: float) -> Status:
    return graded(ms, settings.HEALTH_LATENCY_WARNING_MS, settings.HEALTH_LATENCY_CRITICAL_MS)


def percent_status(percent: float, kind: str) -> Status:
    """kind: DISK, MEMORY or CONNECTIONS, naming the HEALTH_<kind>_WARNING/CRITICAL_PERCENT settings."""
    return graded(
        percent,
        getattr(settings, f"HEALTH_{kind}_WARNING_PERCENT"),
        getattr(settings, f"HEALTH_{kind}_CRITICAL_PERCENT"),
    )


def elapsed_ms(started: float) -> float:
    """Milliseconds since started (a time.perf_counter() value)."""
    return (time.perf_counter() - started) * 1000


def mib(size: float) -> str:
    return f"{size / 2**20:.0f} MiB"
