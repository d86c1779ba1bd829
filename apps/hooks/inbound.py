"""What every inbound hook shares: the body limit, strict JSON, 503 when the database is down,
and the count of rejected requests on /metrics.

A hook view is wrapped by `hook()`: it is CSRF-exempt (a hook is called by a
machine with its own credential, never by a browser session), refuses a body
over HOOKS_MAX_BODY_BYTES with 413 from Content-Length before reading it, and
turns a database outage into 503 (Alertmanager and most senders retry on 5xx,
so nothing is lost) instead of a 500.

Rejections are counted in the cache (Redis in production: one count for every
web process) and exposed as opsportal_hooks_rejected_total{hook,reason}.
"""

import functools
import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import structlog
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from apps.core.prometheus import Family, Samples

logger = structlog.get_logger(__name__)

HOOKS = ("alertmanager", "events", "heartbeat")
REASONS = ("too_large", "bad_json", "unauthorized", "not_found", "bad_request", "unavailable", "method")
MAX_JSON_DEPTH = 32
MAX_JSON_ITEMS = 100_000


class HookRejectedError(Exception):
    """Refuse the request: status, a reason for /metrics, a message for the caller (never their secrets)."""

    def __init__(self, status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.headers = int(status), reason, message, headers or {}


def reject(hook: str, request: HttpRequest, rejected: HookRejectedError) -> HttpResponse:
    count_rejection(hook, rejected.reason)
    # The path names the receiver; never the body or the Authorization header.
    logger.warning("hook_rejected", hook=hook, path=request.path, status=rejected.status, reason=rejected.reason)
    response = JsonResponse({"error": rejected.message}, status=rejected.status)
    for name, value in rejected.headers.items():
        response[name] = value
    return response


def hook(name: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Wrap a hook view: CSRF-exempt, body limit, HookRejectedError → its answer, database down → 503."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                check_size(request)
                return view(request, *args, **kwargs)
            except HookRejectedError as rejected:
                return reject(name, request, rejected)
            except (OperationalError, InterfaceError) as exc:  # the database is down or unreachable
                logger.error("hook_database_unavailable", hook=name, path=request.path, error=type(exc).__name__)
                unavailable = HookRejectedError(
                    HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "The database is unavailable; retry later.",
                    headers={"Retry-After": "10"},
                )  # fmt: skip
                return reject(name, request, unavailable)
            except DatabaseError:
                raise

        wrapper.hook_name = name  # tests list the CSRF-exempt views by this mark
        return wrapper

    return decorate


def check_size(request: HttpRequest) -> None:
    """413 from the Content-Length alone (or a chunked body), before a byte of the body is read."""
    limit = settings.HOOKS_MAX_BODY_BYTES
    length = request.META.get("CONTENT_LENGTH") or "0"
    try:
        size = int(length)
    except ValueError:
        raise HookRejectedError(HTTPStatus.BAD_REQUEST, "bad_request", "Content-Length is not a number.") from None
    if size > limit:
        raise HookRejectedError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too_large", f"The body is larger than {limit} bytes."
        )


def body(request: HttpRequest) -> bytes:
    """The raw body, at most HOOKS_MAX_BODY_BYTES (a body without Content-Length is cut off and refused)."""
    limit = settings.HOOKS_MAX_BODY_BYTES
    data = request.read(limit + 1)
    if len(data) > limit:
        raise HookRejectedError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too_large", f"The body is larger than {limit} bytes."
        )
    return data


def parse_json(data: bytes, *, allow_nul: bool = False) -> Any:
    """Strict JSON (UTF-8, no NaN, no NUL character), at most MAX_JSON_DEPTH deep and MAX_JSON_ITEMS values;
    else 400. (PostgreSQL cannot store a NUL in text: refused here, it is a 400 on every database, not a 500.)
    `allow_nul`: the caller refuses NUL characters itself, naming where they are (the API's parser)."""
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise HookRejectedError(HTTPStatus.BAD_REQUEST, "bad_json", "The body is not valid JSON.") from None
    _check_shape(value, allow_nul)
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _check_shape(value: Any, allow_nul: bool) -> None:
    stack, items = [([value], 0)], -1
    while stack:
        current, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise HookRejectedError(
                HTTPStatus.BAD_REQUEST, "bad_json", f"The JSON is nested deeper than {MAX_JSON_DEPTH}."
            )
        children = current.values() if isinstance(current, dict) else current
        if not allow_nul:
            _check_text(current.keys() if isinstance(current, dict) else ())
            _check_text(children)
        for child in children:
            items += 1
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
        if items > MAX_JSON_ITEMS:
            raise HookRejectedError(
                HTTPStatus.BAD_REQUEST, "bad_json", f"The JSON has more than {MAX_JSON_ITEMS} values."
            )


def _check_text(values: Any) -> None:
    if any(isinstance(text, str) and "\x00" in text for text in values):
        raise HookRejectedError(HTTPStatus.BAD_REQUEST, "bad_json", "The JSON holds a NUL character (\\u0000).")


def count_rejection(hook: str, reason: str) -> None:
    key = f"hooks-rejected:{hook}:{reason}"
    try:
        try:
            cache.incr(key)
        except ValueError:
            if not cache.add(key, 1, timeout=None):
                cache.incr(key)
    except Exception:
        logger.warning("hook_rejection_not_counted", hook=hook, reason=reason)


def rejections() -> Samples:
    keys = {f"hooks-rejected:{hook}:{reason}": (hook, reason) for hook in HOOKS for reason in REASONS}
    counts = cache.get_many(list(keys))
    return [(labels, float(counts.get(key, 0))) for key, labels in keys.items()]


FAMILIES = (
    Family(
        "opsportal_hooks_rejected",
        "Inbound hook requests refused, by hook and reason (too_large, bad_json, unauthorized, ...).",
        rejections,
        labels=("hook", "reason"),
        kind="counter",
    ),
)
