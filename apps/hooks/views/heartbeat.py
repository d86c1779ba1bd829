"""/hooks/heartbeat/<uuid> (and /start, /fail): a job's ping, by GET, HEAD or POST, with no other credential.

The uuid is the secret, as in healthchecks: whoever knows the URL may ping it,
so it is shown only to people who may view the heartbeat, and the portal's log
lines keep the path without it (apps/core/redaction.py; a reverse proxy's own
access log is the operator's to trim). The answer is a fast 200 "OK"; an unknown
uuid is 404.
"""

import uuid
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from apps.hooks import heartbeats
from apps.hooks.inbound import HookRejectedError, body, hook
from apps.hooks.models import Heartbeat, HeartbeatPing

METHODS = ("GET", "HEAD", "POST")
ENDINGS = {HeartbeatPing.Kind.SUCCESS: "", HeartbeatPing.Kind.START: "/start", HeartbeatPing.Kind.FAIL: "/fail"}


@hook("heartbeat")
def heartbeat_ping(request: HttpRequest, code: str, kind: str) -> HttpResponse:
    if request.method not in METHODS:
        allow = {"Allow": ", ".join(METHODS)}
        raise HookRejectedError(HTTPStatus.METHOD_NOT_ALLOWED, "method", "Ping with GET, HEAD or POST.", headers=allow)
    try:
        key = uuid.UUID(code)
    except ValueError:
        raise _not_found() from None
    try:
        heartbeats.ping(
            key,
            kind=kind,
            method=request.method,
            ip=request.META.get("REMOTE_ADDR") or None,
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
            body=body(request),
        )
    except Heartbeat.DoesNotExist:
        raise _not_found() from None
    return HttpResponse("OK", content_type="text/plain; charset=utf-8")


def _not_found() -> HookRejectedError:
    return HookRejectedError(HTTPStatus.NOT_FOUND, "not_found", "No heartbeat has this address.")


def ping_urls(request: HttpRequest, heartbeat: Heartbeat) -> dict[str, str]:
    """{"success": ..., "start": ..., "fail": ...}: absolute, on the host the request came to."""
    return {
        kind: request.build_absolute_uri(reverse(f"hooks-heartbeat-{kind}", args=[heartbeat.uuid])) for kind in ENDINGS
    }
