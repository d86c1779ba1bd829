"""How the API reads what it is sent: the hooks' strict JSON, query strings, and times the portal can store.

Whatever a database cannot hold must be a 400 before it gets there, not a 500
from it: PostgreSQL refuses a NUL character in text (SQLite takes it, so the
same request would pass in one mode and fail in the other), and a time near
year 1 or 9999 overflows when converted to UTC or shifted by a period.
"""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _storable(moment: datetime) -> datetime:
    if not EARLIEST <= moment < LATEST:
        raise ValueError(f"must be from {EARLIEST:%Y} to {LATEST:%Y}")
    return moment


Moment = Annotated[AwareDatetime, AfterValidator(_storable)]  # a time with its offset, in a range we can store
