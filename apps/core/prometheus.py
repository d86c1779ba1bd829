"""The portal's own state on /metrics: each app adds families of it in its AppConfig.ready().

core serves /metrics but imports no app above it (ARCHITECTURE.md), so this is
the hook the apps fill: a Family is a name, a help text and a function that
reads its samples from the database at scrape time. A family whose read fails
(the database is down, a table is missing) is left out of that scrape and
logged; the endpoint still answers with everything else.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import structlog
from django.db import transaction
from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

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


_registered: set[str] = set()


def register(*families: Family) -> None:
    """Serve these families on /metrics from now on; registering a name twice is a no-op (ready() may rerun)."""
    new = [family for family in families if family.name not in _registered]
    if new:
        REGISTRY.register(FamilyCollector(new))
        _registered.update(family.name for family in new)
