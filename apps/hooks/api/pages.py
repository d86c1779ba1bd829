"""Keyset pagination shared by the list endpoints: `?limit=&cursor=`, answered with `next`.

A cursor is the last row's id, opaque to clients: the next page is the rows
strictly after it in the list's order, so rows inserted meanwhile never shift
a page (no duplicates, no gaps), unlike an offset.
"""

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from django.db.models import QuerySet
from ninja import Field, Schema
from pydantic import BaseModel

T = TypeVar("T")
MAX_LIMIT = 500


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last page.")


class PageQuery(Schema):
    limit: int = Field(100, ge=1, le=MAX_LIMIT, description="Rows per page.")
    # An id in a 64-bit column: ASCII digits only (str.isdigit() would let "²" through to int()).
    cursor: str | None = Field(None, pattern=r"^[0-9]{1,19}$", description="`next` from the previous page.")


def page(
    rows: QuerySet, query: PageQuery, *, newest_first: bool = True, row: Callable[[Any], Any] = lambda item: item
) -> dict[str, Any]:
    """One page of `rows` (ordered by id) after the cursor, as {"items": [...], "next": ...}."""
    if query.cursor is not None:  # validated by PageQuery's pattern
        after = int(query.cursor)
        rows = rows.filter(pk__lt=after) if newest_first else rows.filter(pk__gt=after)
    items: Iterable[Any] = list(rows.order_by("-pk" if newest_first else "pk")[: query.limit + 1])
    more = len(items) > query.limit
    items = items[: query.limit]
    last = items[-1] if items else None
    next_cursor = str(last["id"] if isinstance(last, dict) else last.pk) if more and last is not None else None
    return {"items": [row(item) for item in items], "next": next_cursor}
