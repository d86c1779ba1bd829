"""How the API reads query strings, forms and JSON bodies: strictly, and nothing PostgreSQL cannot store.

ninja's default parser takes any JSON Python accepts (NaN, Infinity, any depth)
and passes on strings with NUL characters, which PostgreSQL refuses in text and
jsonb columns alike (a DataError, so a 500 where a 400 is due). Here a body is
read by the hooks' strict parse_json (UTF-8, no NaN, bounded depth and size),
and a NUL in any query or form value or any JSON string is a 400 naming its field,
as is a body that is not a JSON object.
"""

from http import HTTPStatus
from typing import Any

from django.http import HttpRequest
from django.utils.datastructures import MultiValueDict
from ninja.parser import Parser

from apps.hooks.api.problems import ApiError, bad_request
from apps.hooks.inbound import HookRejectedError, parse_json

NUL = "\x00"
NUL_MESSAGE = "must not contain a NUL character"


class ApiParser(Parser):
    def parse_body(self, request: HttpRequest) -> Any:
        try:
            value = parse_json(request.body, allow_nul=True)
        except HookRejectedError as rejected:
            if rejected.status == HTTPStatus.BAD_REQUEST:
                raise bad_request("body", rejected.message) from None
            raise ApiError(rejected.status, rejected.message) from None
        field = _nul_in(value, "")
        if field is not None:
            raise bad_request(field or "body", f"{field or 'body'} {NUL_MESSAGE}")
        if value is not None and not isinstance(value, dict):
            # Every operation's body is an object (null where it is optional); ninja would read a list or a number
            # as an object whose fields are all missing, and take it where they all have defaults.
            raise bad_request("body", "the body must be a JSON object")
        return value

    def parse_querydict(self, data: MultiValueDict, list_fields: list[str], request: HttpRequest) -> dict[str, Any]:
        for key, values in data.lists():
            if NUL in key or any(isinstance(value, str) and NUL in value for value in values):
                name = key.replace(NUL, "\\0")
                raise bad_request(name, f"{name} {NUL_MESSAGE}")
        return super().parse_querydict(data, list_fields, request)


def _nul_in(value: Any, path: str) -> str | None:
    """The dotted path of the first string (key or value) holding a NUL, else None (iterative: any depth)."""
    stack = [(value, path)]
    while stack:
        current, where = stack.pop()
        if isinstance(current, str):
            if NUL in current:
                return where
        elif isinstance(current, dict):
            for key, child in current.items():
                inner = f"{where}.{key}" if where else str(key)
                if NUL in key:
                    return inner.replace(NUL, "\\0")
                stack.append((child, inner))
        elif isinstance(current, list):
            stack.extend((child, f"{where}.{index}" if where else str(index)) for index, child in enumerate(current))
    return None
