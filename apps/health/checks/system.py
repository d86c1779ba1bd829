"""Checks of the machine and of this process: disk space, memory, CPU load, the process itself, migrations."""

import os
import resource
from pathlib import Path

import psutil
from django.conf import settings
from django.db import connections
from django.db.migrations.executor import MigrationExecutor

from apps.health.checks.base import Outcome, Status, graded, ok, registry, warning, worst
from apps.health.checks.grading import mib, percent_status


def disk_paths() -> list[str]:
    """HEALTH_DISK_PATHS, or by default the folders of the SQLite database (else var/) and of the backups."""
    if settings.HEALTH_DISK_PATHS:
        return list(settings.HEALTH_DISK_PATHS)
    database = settings.DATABASES["default"]
    paths = [str(Path(database["NAME"]).parent if database["ENGINE"].endswith("sqlite3") else settings.VAR_DIR)]
    backups = getattr(settings, "BACKUP_DIR", None)  # set by the backups app when it is installed
    if backups:
        paths.append(str(backups))
    return list(dict.fromkeys(paths))


@registry.register("disk")
def disk() -> Outcome:
    """Space used on the filesystem of each path in HEALTH_DISK_PATHS (80 % warning, 90 % critical by default)."""
    found: list[tuple[Status, str]] = []
    details: dict[str, dict] = {}
    for path in disk_paths():
        try:
            usage = psutil.disk_usage(path)
        except OSError as error:
            details[path] = {"error": error.strerror or str(error)}
            found.append((Status.CRITICAL, f"{path}: {error.strerror or error}"))
            continue
        details[path] = {"percent": usage.percent, "free_bytes": usage.free, "total_bytes": usage.total}
        line = f"{path} {usage.percent:.0f} % used ({usage.free / 2**30:.1f} GiB free)"
        found.append((percent_status(usage.percent, "DISK"), line))
    status, line = max(found, key=lambda item: item[0].rank)  # the first of the worst
    more = f" (and {len(found) - 1} more path{'s' if len(found) > 2 else ''})" if len(found) > 1 else ""
    return Outcome(status, f"{line}{more}", {"paths": details})


@registry.register("memory")
def memory() -> Outcome:
    """The machine's memory in use (80 % warning, 90 % critical by default)."""
    used = psutil.virtual_memory()
    return Outcome(
        percent_status(used.percent, "MEMORY"),
        f"{used.percent:.0f} % used ({mib(used.available)} available of {mib(used.total)})",
        {"percent": used.percent, "available_bytes": used.available, "total_bytes": used.total},
    )


@registry.register("cpu")
def cpu() -> Outcome:
    """The 5-minute load average per CPU against HEALTH_LOAD_WARNING/CRITICAL_PER_CPU."""
    load1, load5, load15 = psutil.getloadavg()
    cpus = psutil.cpu_count() or 1
    per_cpu = load5 / cpus
    status = graded(per_cpu, settings.HEALTH_LOAD_WARNING_PER_CPU, settings.HEALTH_LOAD_CRITICAL_PER_CPU)
    return Outcome(
        status,
        f"load {load1:.2f} {load5:.2f} {load15:.2f} on {cpus} CPUs ({per_cpu:.2f} per CPU over 5 min)",
        {"load": [round(load1, 2), round(load5, 2), round(load15, 2)], "cpus": cpus, "per_cpu": round(per_cpu, 2)},
    )


@registry.register("process")
def process() -> Outcome:
    """This process: resident memory, open file descriptors against their limit, threads."""
    me = psutil.Process()
    with me.oneshot():
        rss, threads = me.memory_info().rss, me.num_threads()
        fds = me.num_fds() if hasattr(me, "num_fds") else None
    rss_mb = rss / 2**20
    statuses = [graded(rss_mb, settings.HEALTH_PROCESS_RSS_WARNING_MB, settings.HEALTH_PROCESS_RSS_CRITICAL_MB)]
    details = {"pid": os.getpid(), "rss_bytes": rss, "threads": threads, "open_files": fds}
    parts = [f"pid {os.getpid()}", f"RSS {rss_mb:.0f} MiB", f"{threads} threads"]
    if fds is not None:
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        details["open_files_limit"] = limit if limit != resource.RLIM_INFINITY else None
        if limit not in (resource.RLIM_INFINITY, 0):
            statuses.append(percent_status(100 * fds / limit, "CONNECTIONS"))
            parts.append(f"{fds} of {limit} file descriptors")
        else:
            parts.append(f"{fds} file descriptors")
    return Outcome(worst(statuses), ", ".join(parts), details)


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
