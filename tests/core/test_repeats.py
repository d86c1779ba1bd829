"""A warning every request would repeat during an outage: once in a while, saying how many were held back."""

import structlog

from apps.core.repeats import Repeated

logger = structlog.get_logger("tests.repeats")


def warned(log_lines) -> list[dict]:
    return [line for line in log_lines() if line["event"] == "test_dependency_down"]


def test_a_repeated_warning_is_logged_once_then_with_the_count_held_back(log_lines):
    repeated = Repeated(logger, "test_dependency_down", seconds=60)
    try:
        for attempt in range(5):
            try:
                raise ConnectionError(f"refused {attempt}")
            except ConnectionError:
                repeated.warning(exc_info=True, target="redis")
        repeated._last -= 60  # a minute later
        repeated.warning(target="redis")
    finally:
        Repeated.made.remove(repeated)

    lines = warned(log_lines)
    assert [(line["held_back"], line["target"]) for line in lines] == [(0, "redis"), (4, "redis")]
    assert "refused 0" in lines[0]["exception"]
