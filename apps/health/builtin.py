"""The built-in checks. Each is a function registered by name; thresholds come from HEALTH_* settings.

Names: database (database:<alias> for other aliases), cache, redis, channel_layer,
celery_broker, celery_workers, scheduler, disk, memory, cpu, process, migrations;
target:<name> for each enabled HealthTarget (targets.py).
"""

import functools
import time
from collections.abc import Iterable

from django.conf import settings
from django.db import connections
from django.db.migrations.executor import MigrationExecutor

from apps.health.checks.base import Check, Outcome, Status, graded, ok, registry, warning, worst


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
    return (time.perf_counter() - started) * 1000


# ---------------------------------------------------------------- database


def database_name(alias: str) -> str:
    return "database" if alias == "default" else f"database:{alias}"


def database(alias: str) -> Outcome:
    """SELECT 1 latency; on PostgreSQL also the connections in use against max_connections."""
    connection = connections[alias]
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
        latency = elapsed_ms(started)
        details: dict = {"vendor": connection.vendor, "select_ms": round(latency, 1)}
        statuses = [latency_status(latency)]
        message = f"SELECT 1 in {latency:.0f} ms"
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT count(*) FILTER (WHERE backend_type = 'client backend'), "
                "current_setting('max_connections')::int FROM pg_stat_activity"
            )
            used, limit = cursor.fetchone()
            percent = 100 * used / limit
            statuses.append(percent_status(percent, "CONNECTIONS"))
            details.update(connections=used, max_connections=limit, connections_percent=round(percent, 1))
            message += f"; {used} of {limit} connections in use ({percent:.0f} %)"
    return Outcome(worst(statuses), message, details)


@registry.provider
def database_checks() -> Iterable[Check]:
    for alias in settings.DATABASES:
        yield Check(database_name(alias), functools.partial(database, alias), description=f"Database {alias!r}")


# ---------------------------------------------------------------- migrations


@registry.register("migrations", alert_on=Status.WARNING, for_seconds=600)  # a deploy migrates within minutes
def migrations() -> Outcome:
    """Migrations not applied to the default database (warning)."""
    executor = MigrationExecutor(connections["default"])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if not plan:
        return ok("all migrations applied")
    pending = [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]
    shown = ", ".join(pending[:5]) + (f" and {len(pending) - 5} more" if len(pending) > 5 else "")
    return warning(f"{len(pending)} unapplied migration{'s' if len(pending) != 1 else ''}: {shown}", pending=pending)
