"""Streaming exports of audit events as JSON Lines or CSV, in constant memory."""

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC

from django.db.models import QuerySet

COLUMNS = (
    "id", "seq", "timestamp", "actor_id", "actor_username", "action", "outcome", "resource_type", "resource_id",
    "resource_repr", "changes", "details", "ip", "user_agent", "request_id", "prev_hash", "hash",
)  # fmt: skip
FORMATS = ("jsonl", "csv")
SPREADSHEET_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def rows(queryset: QuerySet) -> Iterator[dict]:
    for row in queryset.order_by("id").values(*COLUMNS).iterator(chunk_size=2000):
        row["timestamp"] = row["timestamp"].astimezone(UTC).isoformat(timespec="microseconds")
        yield row


def lines(queryset: QuerySet, fmt: str) -> Iterator[str]:
    """The export, a line at a time (CSV starts with its header)."""
    if fmt == "jsonl":
        for row in rows(queryset):
            yield json.dumps(row, ensure_ascii=False, default=str) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values: list) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(list(COLUMNS))
    for row in rows(queryset):
        yield line([_cell(row[column]) for column in COLUMNS])


def _cell(value: object) -> object:
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, str) and value.startswith(SPREADSHEET_FORMULA):
        return "'" + value  # never a formula when the file is opened in a spreadsheet
    return value
