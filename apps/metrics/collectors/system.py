"""The machine, through psutil: CPU (total and per core), memory, swap, disks, disk I/O, network, load."""

from pathlib import Path
from typing import NamedTuple

import psutil
import structlog
from django.conf import settings

from apps.metrics.collectors.base import Collector, Tick, Values, labelled, registry

logger = structlog.get_logger(__name__)


def disk_paths() -> dict[str, str]:
    """{path: what it is}: the database's folder (SQLite) or var/, and METRICS_DISK_PATHS."""
    database = settings.DATABASES["default"]
    home = Path(database["NAME"]).parent if database["ENGINE"].endswith("sqlite3") else settings.VAR_DIR
    paths = {str(home): "database"}
    for path in settings.METRICS_DISK_PATHS:
        paths.setdefault(path, "configured")
    return paths


def busy_percent(key: str, times: NamedTuple, tick: Tick) -> float | None:
    """CPU busy % since the last tick, from cumulative CPU times (idle and iowait count as not busy).

    Computed from times kept between ticks rather than psutil.cpu_percent(),
    whose reference point is per process: the collector may run in another
    worker process each tick.
    """
    total = sum(times)
    idle = times.idle + getattr(times, "iowait", 0.0)
    total_rate, idle_rate = tick.rate(f"{key}.total", total), tick.rate(f"{key}.idle", idle)
    if not total_rate or idle_rate is None:
        return None
    return max(0.0, min(100.0, 100.0 * (1 - idle_rate / total_rate)))


@registry.register
class CpuCollector(Collector):
    name = "cpu"

    def collect(self, tick: Tick) -> Values:
        values = {"system.cpu.percent": busy_percent("cpu", psutil.cpu_times(), tick)}
        for core, times in enumerate(psutil.cpu_times(percpu=True)):
            values[labelled("system.cpu.core.percent", core=str(core))] = busy_percent(f"cpu{core}", times, tick)
        values["system.load.1"] = psutil.getloadavg()[0]
        return values


@registry.register
class MemoryCollector(Collector):
    name = "memory"

    def collect(self, tick: Tick) -> Values:
        return {
            "system.memory.percent": psutil.virtual_memory().percent,
            "system.swap.percent": psutil.swap_memory().percent,
        }


@registry.register
class DiskCollector(Collector):
    name = "disk"

    def collect(self, tick: Tick) -> Values:
        values = {}
        for path, what in disk_paths().items():
            try:
                percent = psutil.disk_usage(path).percent
            except OSError:  # a configured path that is gone: the others are still worth reading
                logger.warning("metrics_disk_path_failed", path=path, exc_info=True)
                continue
            values[labelled("system.disk.percent", path=path)] = percent
            if what == "database":
                values["system.disk.percent"] = percent
        counters = psutil.disk_io_counters()
        if counters is not None:  # None on machines without disks psutil can see (some containers)
            values["system.disk.read.bytes_per_second"] = tick.rate("disk.read", counters.read_bytes)
            values["system.disk.write.bytes_per_second"] = tick.rate("disk.write", counters.write_bytes)
        return values


@registry.register
class NetworkCollector(Collector):
    name = "network"

    def collect(self, tick: Tick) -> Values:
        counters = psutil.net_io_counters()
        return {
            "system.net.recv.bytes_per_second": tick.rate("net.recv", counters.bytes_recv),
            "system.net.sent.bytes_per_second": tick.rate("net.sent", counters.bytes_sent),
        }
