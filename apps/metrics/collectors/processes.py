"""The portal's own processes (from their reports): resident memory, CPU and threads of each."""

from apps.metrics.collectors.base import Collector, Tick, Values, labelled, registry

SERIES = {"rss.bytes": "process.rss.bytes", "cpu.percent": "process.cpu.percent", "threads": "process.threads"}


@registry.register
class ProcessCollector(Collector):
    name = "processes"
    reads_reports = True

    def collect(self, tick: Tick) -> Values:
        values = {}
        for window in tick.windows:
            for key, series in SERIES.items():
                if key in window.process:
                    values[labelled(series, process=window.label)] = window.process[key]
        return values
