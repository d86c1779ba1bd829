"""The portal's own state on /metrics: each app adds families of it in its AppConfig.ready().

core serves /metrics but imports no app above it (ARCHITECTURE.md), so this is
the hook the apps fill: a Family is a name, a help text and a function that
reads its samples from the database at scrape time. A family whose read fails
(the database is down, a table is missing) is left out of that scrape and
logged; the endpoint still answers with everything else.

Under gunicorn, prometheus_client runs in multiprocess mode (opsportal/gunicorn.conf.py):
/metrics then serves the sum of every worker's files instead of the default registry.
django-prometheus keeps only counters and histograms there (its migration gauges are off,
PROMETHEUS_EXPORT_MIGRATIONS); a Gauge added to the portal would need a multiprocess_mode
(livesum, max...) to say how the workers' values combine.
"""

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import structlog
from django.db import transaction
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

logger = structlog.get_logger(__name__)

Samples = Iterable[tuple[tuple[str, ...], float]]  # (label values, value)


@dataclass(frozen=True)
class Family:
    """One metric family: `opsportal_<thing>_<unit>` (a counter's name without its _total)."""

    name: str
    documentation: str
    read: Callable[[], Samples]
    labels: tuple[str, ...] = ()
    kind: Literal["gauge", "counter"] = "gauge"

    def empty(self) -> Metric:
        cls = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        return cls(self.name, self.documentation, labels=self.labels)

    def build(self) -> Metric:
        metric = self.empty()
        # A savepoint per family: on PostgreSQL a failed query inside a transaction (a test's,
        # a caller's) would make every later family fail too.
        with transaction.atomic():
            samples = list(self.read())
        for labels, value in samples:
            metric.add_metric(list(labels), value)
        return metric


class FamilyCollector:
    """A prometheus_client collector over some families; registered once in the default registry."""

    def __init__(self, families: Iterable[Family]) -> None:
        self.families = tuple(families)

    def describe(self) -> Iterator[Metric]:
        # Without describe(), registering would call collect(): database reads during app loading.
        for family in self.families:
            yield family.empty()

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            try:
                yield family.build()
            except Exception:  # a scrape must answer: this family is left out, the others are served
                logger.exception("prometheus_family_failed", family=family.name)


_collectors: list[FamilyCollector] = []


def register(*families: Family) -> None:
    """Serve these families on /metrics from now on; registering a name twice is a no-op (ready() may rerun)."""
    registered = {family.name for collector in _collectors for family in collector.families}
    new = [family for family in families if family.name not in registered]
    if new:
        collector = FamilyCollector(new)
        REGISTRY.register(collector)
        _collectors.append(collector)


def exposition() -> CollectorRegistry:
    """What /metrics serves: the default registry, unless prometheus_client runs in multiprocess mode.

    In that mode (PROMETHEUS_MULTIPROC_DIR, prometheus_client's own variable, read when it was first
    imported: gunicorn.conf.py sets it for the workers) each worker counts into files of its own: the
    answer is the sum of every worker's files plus the portal's families, whichever worker reads them.
    The default registry's process_* and python_* families would be that one worker's: left out.
    """
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    for collector in _collectors:
        registry.register(collector)
    return registry
