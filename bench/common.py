"""What both benchmarks share: the machine they ran on, summary figures, the portal's environment."""

import os
import platform
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

import psutil

from tests.services import subprocess_env

ADMIN_PASSWORD = "bench-admin-password-1"  # a throwaway account in a temporary var dir


def machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def figures(samples: list[float]) -> dict[str, float]:
    """min, median, p90, p99 and max of samples (p90/p99 need at least two)."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive") if len(samples) > 1 else samples * 99
    return {
        "min": min(samples),
        "median": statistics.median(samples),
        "p90": cuts[89],
        "p99": cuts[98],
        "max": max(samples),
    }


def portal_env(var_dir: Path, log_file: Path, **overrides: str) -> dict[str, str]:
    """A runportal environment of its own: var dir, admin password, JSON logs to a file only."""
    return subprocess_env(
        OPSPORTAL_VAR_DIR=str(var_dir),
        OPSPORTAL_ADMIN_PASSWORD=ADMIN_PASSWORD,
        LOG_FORMAT="json",
        LOG_CONSOLE="false",
        LOG_FILE=str(log_file),
        **overrides,
    )


def runportal(port: int, *options: str) -> list[str]:
    return [sys.executable, "manage.py", "runportal", "--port", str(port), *options]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
