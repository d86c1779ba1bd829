"""Request middleware: proxy headers, request id and the request context."""

from collections.abc import Callable

import structlog
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from apps.core import context
from apps.core.proxies import client_ip, is_trusted

Handler = Callable[[HttpRequest], HttpResponse]


class ProxyMiddleware:
    """First in the stack: believe X-Forwarded-For / -Proto only from TRUSTED_PROXIES.

    REMOTE_ADDR becomes the client's address, so everything after this
    (Django, the context, the audit trail, logs) sees the real client.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        peer = meta.get("REMOTE_ADDR", "")
        if is_trusted(peer, settings.TRUSTED_PROXIES):
            meta["REMOTE_ADDR"] = client_ip(peer, meta.get("HTTP_X_FORWARDED_FOR", ""), settings.TRUSTED_PROXIES)
        else:
            meta.pop("HTTP_X_FORWARDED_PROTO", None)
        meta.pop("HTTP_X_FORWARDED_FOR", None)
        return self.get_response(request)


class RequestContextMiddleware:
    """After authentication: set the request context, bind it for logs, echo X-Request-ID."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = context.new_request_id(request.META.get("HTTP_X_REQUEST_ID"))
        # django-structlog reads the request id from the headers: make it this one.
        request.META["HTTP_X_REQUEST_ID"] = request_id
        request.__dict__.pop("headers", None)  # drop a cached copy of the old headers
        user = getattr(request, "user", None)
        authenticated = bool(user is not None and user.is_authenticated)
        ctx = context.RequestContext(
            request_id=request_id,
            user_id=user.pk if authenticated else None,
            username=user.get_username() if authenticated else "",
            ip=request.META.get("REMOTE_ADDR") or None,
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:512],
        )
        token = context.activate(ctx)
        structlog.contextvars.bind_contextvars(ip=ctx.ip)
        try:
            response = self.get_response(request)
        finally:
            context.deactivate(token)
        response["X-Request-ID"] = request_id
        return response
