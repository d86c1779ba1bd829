"""The request context: who is acting, from where, under which request id.

Middleware sets it for each HTTP request; Celery carries it into the tasks queued
during that request (see apps.core.signals). Logging and auditing read it from
here, so a log line and an audit event of one request join on request_id.
"""

import contextvars
import getpass
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


@dataclass(frozen=True)
class RequestContext:
    request_id: str | None = None
    user_id: int | None = None
    username: str = ""
    ip: str | None = None
    user_agent: str = ""
    # How the action came in: web, admin, task, cli; empty for the system itself.
    channel: str = ""

    def as_headers(self) -> dict:
        return asdict(self)

    @classmethod
    def from_headers(cls, data: object) -> "RequestContext":
        if not isinstance(data, dict):
            return cls()
        known = {name: data.get(name) for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar(
    "opsportal_context",
    default=RequestContext(),  # noqa: B039 - frozen, so sharing the default is safe
)


def current() -> RequestContext:
    return _current.get()


def activate(context: RequestContext) -> contextvars.Token:
    return _current.set(context)


def deactivate(token: contextvars.Token) -> None:
    _current.reset(token)


@contextmanager
def bound(context: RequestContext) -> Iterator[RequestContext]:
    token = activate(context)
    try:
        yield context
    finally:
        deactivate(token)


def for_command() -> RequestContext:
    """The context of a manage.py command: the operating-system user running it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = str(os.getuid())
    return RequestContext(username=f"cli:{user}"[:150], channel="cli")


def new_request_id(candidate: str | None = None) -> str:
    """The caller's id when it is well-formed (8-128 of [A-Za-z0-9._:-]), else a fresh UUID."""
    if candidate and REQUEST_ID.match(candidate):
        return candidate
    return str(uuid.uuid4())
