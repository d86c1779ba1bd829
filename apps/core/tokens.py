"""Bearer tokens for the endpoints that machines call (/metrics, /health/)."""

from django.http import HttpRequest
from django.utils.crypto import constant_time_compare


def bearer_matches(request: HttpRequest, expected: str) -> bool | None:
    """None without an Authorization header; otherwise whether it is exactly `Bearer <expected>`.

    Compared in constant time. An empty `expected` (no token configured) matches nothing.
    """
    authorization = request.headers.get("Authorization", "")
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and bool(expected) and constant_time_compare(token.strip(), expected)
