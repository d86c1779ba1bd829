"""A metric rule's summary template: checked when a rule is saved, rendered when its alert fires.

Templates are str.format() strings restricted to four plain names: attribute and
index access ({value.__class__}) would let whoever edits a rule walk Python's
objects, and a template that fails must never stop an evaluation.
"""

import string
from typing import Any

FIELDS = ("value", "threshold", "series", "window")
EXAMPLE = {"value": 12.5, "threshold": 10.0, "series": "system.cpu.percent", "window": "5m"}


def summary_error(template: str) -> str | None:
    """Why the template cannot be used, or None when it renders."""
    try:
        for _, name, spec, _ in string.Formatter().parse(template):
            if name is None:
                continue
            if name not in FIELDS:
                return f"Unknown field {{{name}}}: use {', '.join('{' + f + '}' for f in FIELDS)}."
            if spec and "{" in spec:
                return "Nested fields in a format specification are not allowed."
        template.format(**EXAMPLE)
    except (ValueError, KeyError, IndexError, TypeError) as error:
        return f"The template does not render: {error}."
    return None


def duration(seconds: int) -> str:
    """A window as people write it: 300 -> '5m', 7200 -> '2h', 90 -> '90s'."""
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def render(template: str, *, value: float, threshold: float, series: str, window_seconds: int) -> str | None:
    """The summary, or None when the template cannot render (the caller falls back to a plain one)."""
    fields: dict[str, Any] = {
        "value": value,
        "threshold": threshold,
        "series": series,
        "window": duration(window_seconds),
    }
    if summary_error(template) is not None:
        return None
    try:
        return template.format(**fields)
    except (ValueError, KeyError, IndexError, TypeError):  # e.g. a spec valid for the example, not this value
        return None
