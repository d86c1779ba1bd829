"""Keyset pagination shared by the list endpoints: `?limit=&cursor=`, answered with `next`.

A cursor is the last row's key (its id, unless the list orders by another
unique integer column), opaque to clients: the next page is the rows strictly
after it in the list's order, so rows inserted meanwhile never shift a page
(no duplicates, no gaps), unlike an offset.
"""

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from django.db.models import QuerySet
from ninja import Field, Schema
from pydantic import BaseModel

T = TypeVar("T")
MAX_LIMIT = 500
MAX_KEY = 2**63 - 1  # a bigint
CURSOR = r"^[0-9]{1,40}$"  # ASCII digits: str.isdigit() would let "²" through to int()


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last page.")


class PageQuery(Schema):
    limit: int = Field(100, ge=1, le=MAX_LIMIT, description="Rows per page.")
    cursor: str | None = Field(None, pattern=CURSOR, description="`next` from the previous page.")


def page(
    rows: QuerySet,
    query: PageQuery,
    *,
    newest_first: bool = True,
    key: str = "id",
    row: Callable[[Any], Any] = lambda item: item,
) -> dict[str, Any]:
    """One page of `rows` ordered by `key` after the cursor, as {"items": [...], "next": ...}.

    `key` is a unique, indexed, non-null integer column (rows with a null key
    must be filtered out by the caller); value rows must include it.
    """
    if query.cursor is not None:  # validated by PageQuery's pattern
        after = int(query.cursor)
        if after > MAX_KEY:  # past any key (and any bigint): newest first every row comes after it, else none
            rows = rows if newest_first else rows.none()
        else:
            rows = rows.filter(**{f"{key}__lt" if newest_first else f"{key}__gt": after})
    items: Iterable[Any] = list(rows.order_by(f"-{key}" if newest_first else key)[: query.limit + 1])
    more = len(items) > query.limit
    items = items[: query.limit]
    last = items[-1] if more else None
    next_cursor = None if last is None else str(last[key] if isinstance(last, dict) else getattr(last, key))
    return {"items": [row(item) for item in items], "next": next_cursor}
