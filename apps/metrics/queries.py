"""Reading the time series: the latest value of each series, and a range for a chart."""

from typing import Any

from apps.metrics.models import Series


def latest_values(names: list[str] | None = None) -> dict[str, Any]:
    """The newest sample of each series (of those named): {"at": <Unix seconds>, "values": {name: value}}.

    One query on the series table (each series keeps its last value), however many samples are stored.
    """
    rows = Series.objects.filter(last_at__isnull=False)
    if names is not None:
        rows = rows.filter(name__in=names)
    values, newest = {}, None
    for name, at, value in rows.values_list("name", "last_at", "last_value"):
        values[name] = value
        newest = at if newest is None or at > newest else newest
    return {"at": newest.timestamp() if newest else None, "values": values}
