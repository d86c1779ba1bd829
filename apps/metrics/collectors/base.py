"""The contract of a collector: a small class that reads one kind of figures and returns {series: value}.

Collectors are registered by kind (one module each: system, processes, http,
readings, celery, database, redis). A tick runs the "outside" collectors first,
outside any transaction (they read psutil, the broker, Redis); then, inside the
transaction that stores the samples, the collectors of the processes' reports.
A collector that raises is logged and left out of that tick; the others run.
"""

import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

import structlog

from apps.metrics.reports import ProcessWindow

logger = structlog.get_logger(__name__)

Values = dict[str, float]


@dataclass
class Tick:
    """One collection: its time, what earlier ticks left to compute rates from, the processes' windows."""

    now: datetime
    memory: dict[str, list[float]] = field(default_factory=dict)  # key -> [counter value, Unix seconds]
    windows: list[ProcessWindow] = field(default_factory=list)

    def rate(self, key: str, value: float) -> float | None:
        """Per-second growth of a machine counter (bytes read...) since the last tick; None the first time.

        The memory travels between ticks through the cache (the collector may run
        in a different worker process each time); a counter that went down (a
        reboot) starts over.
        """
        at = self.now.timestamp()
        before = self.memory.get(key)
        self.memory[key] = [value, at]
        if before is None or at <= before[1] or value < before[0]:
            return None
        return (value - before[0]) / (at - before[1])


class Collector(ABC):
    """Subclasses set `name` and `reads_reports`, and implement collect()."""

    name: ClassVar[str]
    reads_reports: ClassVar[bool] = False  # True: runs in the store's transaction, on tick.windows

    @abstractmethod
    def collect(self, tick: Tick) -> Values:
        """This collector's figures of the tick, {series name: value}."""


class Registry:
    def __init__(self) -> None:
        self._collectors: dict[str, Collector] = {}

    def register(self, cls: type[Collector]) -> type[Collector]:
        """Class decorator: one instance per collector name (a second registration replaces the first)."""
        self._collectors[cls.name] = cls()
        return cls

    def collectors(self, *, reads_reports: bool) -> list[Collector]:
        return [c for c in self._collectors.values() if c.reads_reports == reads_reports]

    def names(self) -> list[str]:
        return list(self._collectors)


registry = Registry()


def run(collectors: Iterable[Collector], tick: Tick) -> tuple[Values, dict[str, float]]:
    """Every collector's values, and each one's wall time in ms; one that fails is logged and skipped."""
    values: Values = {}
    timings = {}
    for collector in collectors:
        started = time.perf_counter()
        try:
            found = collector.collect(tick)
        except Exception:
            logger.warning("metrics_collector_failed", collector=collector.name, exc_info=True)
            continue
        finally:
            timings[collector.name] = (time.perf_counter() - started) * 1000
        values.update({name: float(value) for name, value in found.items() if value is not None})
    return values, timings


def labelled(name: str, **labels: str) -> str:
    """A series name with labels, Prometheus style: system.disk.percent{path="/var"}."""
    inside = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return f"{name}{{{inside}}}"
