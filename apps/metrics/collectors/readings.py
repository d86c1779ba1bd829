"""Readings registered by any process (apps.metrics.reporting.register), summed across processes.

The dashboard's clients and frames (registered by apps.dashboard), Celery's
active tasks and failures (registered by this app's Celery signal handlers) come
this way: gauges as the sum of the live processes' levels, counters as the sum
of their per-second rates, stored as `<name>.per_second`.
"""

from apps.metrics.collectors.base import Collector, Tick, Values, registry

HTTP_PREFIX = "http:"  # the windows' request rates by view, summed by the http collector


@registry.register
class ReadingsCollector(Collector):
    name = "readings"
    reads_reports = True

    def collect(self, tick: Tick) -> Values:
        values: Values = {}
        for window in tick.windows:
            for name, value in window.gauges.items():
                values[name] = values.get(name, 0.0) + value
            for name, rate in window.rates.items():
                if not name.startswith(HTTP_PREFIX):
                    series = f"{name}.per_second"
                    values[series] = values.get(series, 0.0) + rate
        return values
