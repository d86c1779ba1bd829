"""Run checks concurrently, each bounded by its timeout, none waiting for another.

Each check runs in a daemon thread of its own. The runner waits for every
thread until that check's deadline and no longer: a check still running then
is reported critical ("timed out after 5 s") and its thread is left to finish
on its own (a thread cannot be killed). So that a dependency that hangs for
good does not pile up threads, run after run, a check still running from an
earlier call is joined rather than started again: the new caller waits for the
same execution (up to its own deadline) and shares its answer. At most one
thread per check name is ever running.
"""

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from django.db import connections
from django.utils import timezone

from apps.core.redaction import redact
from apps.health.checks.base import Check, Outcome, Result, Status

logger = structlog.get_logger(__name__)
MESSAGE_MAX_LENGTH = 500


@dataclass
class _Flight:
    """One execution of a check's function, which any number of callers may wait for."""

    started: float  # monotonic
    started_at: datetime
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None
    elapsed: float = 0.0


_flights: dict[str, _Flight] = {}
_flights_lock = threading.Lock()


def run(checks: Iterable[Check], *, timeout: float | None = None, key_prefix: str = "") -> list[Result]:
    """Run checks concurrently; a Result for each, in the order given, within about the longest timeout.

    timeout, when given, replaces every check's own. key_prefix keeps apart
    executions that must not be shared (readiness probes from the full checks).
    """
    started = [
        (check, _join_or_start(check, key_prefix + check.name), timeout or check.effective_timeout) for check in checks
    ]
    return [_wait(check, flight, limit) for check, flight, limit in started]


def _join_or_start(check: Check, key: str) -> _Flight:
    with _flights_lock:
        flight = _flights.get(key)
        if flight is not None:
            return flight
        flight = _Flight(started=time.monotonic(), started_at=timezone.now())
        _flights[key] = flight
    thread = threading.Thread(
        target=_execute, args=(key, check.func, flight), name=f"health-check:{key}"[:60], daemon=True
    )
    thread.start()
    return flight


def _execute(key: str, func: Callable[[], Outcome], flight: _Flight) -> None:
    try:
        outcome = func()
        if not isinstance(outcome, Outcome):
            outcome = Outcome(Status.UNKNOWN, f"the check returned {type(outcome).__name__}, not an Outcome")
    except Exception as error:  # a check that raises is critical, with the reason
        reason = _one_line(redact(str(error))) or type(error).__name__  # an error may quote a URL with a password
        logger.warning("health_check_failed", check=key, error=type(error).__name__, reason=reason)
        outcome = Outcome(Status.CRITICAL, f"check failed: {reason}")
    finally:
        connections.close_all()  # this thread's own; a pooled one goes back to its pool
    flight.outcome, flight.elapsed = outcome, time.monotonic() - flight.started
    with _flights_lock:
        if _flights.get(key) is flight:
            del _flights[key]
    flight.done.set()


def _wait(check: Check, flight: _Flight, limit: float) -> Result:
    left = flight.started + limit - time.monotonic()
    if flight.done.wait(max(left, 0)) and flight.outcome is not None:
        outcome = flight.outcome
        return Result(
            name=check.name,
            status=Status(outcome.status),
            message=_one_line(outcome.message)[:MESSAGE_MAX_LENGTH] or str(outcome.status),
            latency_ms=flight.elapsed * 1000,
            details=dict(outcome.details),
            checked_at=flight.started_at,
        )
    running = time.monotonic() - flight.started
    logger.warning("health_check_timed_out", check=check.name, timeout=limit, running=round(running, 1))
    return Result(
        name=check.name,
        status=Status.CRITICAL,
        message=f"timed out after {_seconds(limit)} s",
        latency_ms=running * 1000,
        details={"timeout_seconds": limit, "running_seconds": round(running, 1)},
        checked_at=flight.started_at,
    )


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _seconds(value: float) -> str:
    return f"{value:g}"


def in_flight() -> dict[str, timedelta]:
    """Checks running now and for how long (hung ones among them): for diagnostics."""
    now = time.monotonic()
    with _flights_lock:
        return {key: timedelta(seconds=now - flight.started) for key, flight in _flights.items()}
