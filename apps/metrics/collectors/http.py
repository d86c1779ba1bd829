"""HTTP traffic of every web process (from their reports): request rate, 4xx and 5xx %, latency percentiles.

Percentiles come from the processes' latency histograms added bucket by bucket,
never from averaging each process's percentiles (which is not a percentile of
anything). Overall and by view; a view appears in the tick it served requests.
"""

from apps.metrics import histogram
from apps.metrics.collectors.base import Collector, Tick, Values, labelled, registry
from apps.metrics.collectors.readings import HTTP_PREFIX
from apps.metrics.reports import ViewWindow

PERCENTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}


def latency(views: list[ViewWindow], view: str | None = None) -> Values:
    """http.latency.p50/p95/p99.ms of the merged histograms (labelled with the view when given)."""
    merged = histogram.merge(found.latency for found in views)
    values = {}
    for label, fraction in PERCENTILES.items():
        name = f"http.latency.{label}.ms"
        values[labelled(name, view=view) if view else name] = histogram.percentile(merged, fraction)
    return values


@registry.register
class HttpCollector(Collector):
    name = "http"
    reads_reports = True

    def collect(self, tick: Tick) -> Values:
        by_view: dict[str, list[ViewWindow]] = {}
        rate_by_view: dict[str, float] = {}
        for window in tick.windows:
            for view, found in window.views.items():
                by_view.setdefault(view, []).append(found)
            for name, rate in window.rates.items():
                if name.startswith(HTTP_PREFIX):
                    view = name.removeprefix(HTTP_PREFIX)
                    rate_by_view[view] = rate_by_view.get(view, 0.0) + rate
        everything = [found for views in by_view.values() for found in views]
        requests = sum(found.requests for found in everything)
        values = {
            "http.requests.per_second": sum(rate_by_view.values()),
            "http.4xx.percent": 100.0 * sum(f.client_errors for f in everything) / requests if requests else 0.0,
            "http.5xx.percent": 100.0 * sum(f.server_errors for f in everything) / requests if requests else 0.0,
            **latency(everything),
        }
        for view, rate in rate_by_view.items():
            values[labelled("http.requests.per_second", view=view)] = rate
        for view, views in by_view.items():
            values.update(latency(views, view))
        return values
