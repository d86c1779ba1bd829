"""Request middleware: who the client is, which request this is, and the request context.

Both are sync-only on purpose. Under ASGI, Django then runs the whole chain of
dual-mode middleware below ServeStatic in one worker thread (one switch per
request) instead of hopping between the event loop and threads for each
middleware (measured: bench/middleware_overhead.py).
"""

import time
from collections.abc import Callable

import structlog
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from apps.core import context, epochs
from apps.core.proxies import client_ip, is_trusted

Handler = Callable[[HttpRequest], HttpResponse]


class RequestIdentityMiddleware:
    """Near the top: the client's address and the request id, for everything after it.

    X-Forwarded-For / -Proto are believed only from TRUSTED_PROXIES, and
    REMOTE_ADDR becomes the client's address. X-Request-ID is kept when
    well-formed, replaced otherwise, and echoed in the response.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.started_at = time.perf_counter()
        meta = request.META
        peer = meta.get("REMOTE_ADDR", "")
        if is_trusted(peer, settings.TRUSTED_PROXIES):
            meta["REMOTE_ADDR"] = client_ip(peer, meta.get("HTTP_X_FORWARDED_FOR", ""), settings.TRUSTED_PROXIES)
        else:
            meta.pop("HTTP_X_FORWARDED_PROTO", None)
        meta.pop("HTTP_X_FORWARDED_FOR", None)
        # django-structlog reads the request id from the headers: make it this one.
        request_id = meta["HTTP_X_REQUEST_ID"] = context.new_request_id(meta.get("HTTP_X_REQUEST_ID"))
        request.__dict__.pop("headers", None)  # drop a cached copy of the old headers
        structlog.contextvars.bind_contextvars(ip=meta.get("REMOTE_ADDR") or None)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class RequestContextMiddleware:
    """Last: the request context (request id, user, client) for views, services and tasks."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        authenticated = user.is_authenticated
        token = context.activate(
            context.RequestContext(
                request_id=request.META["HTTP_X_REQUEST_ID"],
                user_id=user.pk if authenticated else None,
                username=user.get_username() if authenticated else "",
                ip=request.META.get("REMOTE_ADDR") or None,
                user_agent=request.META.get("HTTP_USER_AGENT", "")[:512],
                channel="web",
            )
        )
        try:
            with epochs.one_read_per_request():
                return self.get_response(request)
        finally:
            context.deactivate(token)
