"""What the store's tests share: the fake clock's start, requests recorded as the middleware does."""

from datetime import UTC, datetime

from apps.metrics.traffic import Traffic

START = datetime(2026, 11, 2, 3, 0, 0, tzinfo=UTC)  # on a minute and an hour boundary


def serve(source: Traffic, view: str, latencies_ms: list[float], status: int = 200) -> None:
    """Record requests as the middleware does: one per latency."""
    for ms in latencies_ms:
        source.record(view, status, ms / 1000)
