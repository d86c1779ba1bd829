"""Metric collectors: the contract (base) and one module per kind, registered on import."""

from apps.metrics.collectors import celery, database, http, processes, readings, redis, system  # noqa: F401
from apps.metrics.collectors.base import Collector, Tick, Values, labelled, registry, run

__all__ = ["Collector", "Tick", "Values", "labelled", "registry", "run"]
