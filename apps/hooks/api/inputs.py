"""How the API reads what it is sent: the hooks' strict JSON, query strings, and times the portal can store.

Whatever a database cannot hold must be a 400 before it gets there, not a 500
from it: PostgreSQL refuses a NUL character in text (SQLite takes it, so the
same request would pass in one mode and fail in the other), and a time near
year 1 or 9999 overflows when converted to UTC or shifted by a period.

What is refused, the schema says: JSON Schema cannot bound a date-time, so a
Moment's schema bounds its year with a pattern, and the validator applies the
same pattern; schema and API take the same strings.
"""

import re
from enum import Enum, StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, WithJsonSchema

# 1970 to 8999 as written: whatever its offset, such a time is between 1969-12-31 and 9000-01-01 in UTC.
YEARS = r"^(19[7-9][0-9]|[2-8][0-9]{3})-"
MOMENT_SCHEMA = {"type": "string", "format": "date-time", "pattern": YEARS}


def _iso(value: Any) -> Any:
    # pydantic alone would also read a number, or a string of digits, as Unix time: the schema says date-time.
    if not isinstance(value, str) or not re.match(YEARS, value):
        raise ValueError("must be a time in ISO 8601 with its offset (2026-01-31T09:00:00Z), from 1970 to 8999")
    return value


# A time with its offset, in a range we can store; the schema's pattern says which years.
Moment = Annotated[AwareDatetime, BeforeValidator(_iso), WithJsonSchema(MOMENT_SCHEMA)]


def schema_enum(name: str, choices: type[Enum]) -> type[StrEnum]:
    """The same values under a name of their own in the schema.

    ninja names an enum's schema after its class, and keeps one schema per name:
    the health checks', the heartbeats' and the backups' states are all classes
    called Status, and all but one would be described by another's values.
    """
    return StrEnum(name, [(choice.name, choice.value) for choice in choices])
