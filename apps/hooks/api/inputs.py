"""How the API reads what it is sent: the hooks' strict JSON, query strings, and times the portal can store.

Whatever a database cannot hold must be a 400 before it gets there, not a 500
from it: PostgreSQL refuses a NUL character in text (SQLite takes it, so the
same request would pass in one mode and fail in the other), and a time near
year 1 or 9999 overflows when converted to UTC or shifted by a period.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from django.http import HttpRequest
from django.utils.datastructures import MultiValueDict
from ninja.parser import Parser
from pydantic import AfterValidator, AwareDatetime

from apps.hooks import inbound
from apps.hooks.api.problems import bad_request

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


class ApiParser(Parser):
    def parse_body(self, request: HttpRequest) -> Any:
        try:
            return inbound.parse_json(request.body)
        except inbound.HookRejectedError as exc:
            # ninja answers every parse failure with the same words; problems.py gives the caller these.
            request.body_problem = exc.message
            raise

    def parse_querydict(self, data: MultiValueDict, list_fields: list[str], request: HttpRequest) -> dict[str, Any]:
        for name, values in data.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                raise bad_request(name.replace("\x00", "") or "query", "A NUL character (%00) is not allowed.")
        return super().parse_querydict(data, list_fields, request)


def _storable(moment: datetime) -> datetime:
    if not EARLIEST <= moment < LATEST:
        raise ValueError(f"must be from {EARLIEST:%Y} to {LATEST:%Y}")
    return moment


Moment = Annotated[AwareDatetime, AfterValidator(_storable)]  # a time with its offset, in a range we can store
