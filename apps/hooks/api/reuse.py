"""Pages of a list that this process wrote out lately, sent again while none of their rows can have changed.

The alerts list is the API's most polled read (dashboards, scripts, Grafana), and
its rows change far less often than they are read. A page is kept as the bytes
sent, with the epoch of its rows (apps.core.epochs) read before its query, and sent
again while the epoch keeps that value, for API_LIST_CACHE_SECONDS at most: a
writer moves the epoch before it answers, so a client reads its own change at once
in every process; the age only bounds a change whose new epoch never reached Redis.
Authentication, the rate limit and the permission check run before, as for any
request: a page is the same for every caller who may read it.
"""

import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from pydantic import BaseModel

from apps.core.epochs import Epoch
from apps.hooks.api.renderer import ORJSONRenderer

KEPT_MAX = 100  # pages per process (a page of 500 alerts is about 170 kB); the oldest kept goes first
_kept: dict[str, tuple[float, int, bytes]] = {}  # key: (when, the epoch before its query, the body)
_storing = threading.Lock()
_renderer = ORJSONRenderer()
CONTENT_TYPE = f"{_renderer.media_type}; charset={_renderer.charset}"


def page(
    request: HttpRequest, key: str, epoch: Epoch, schema: type[BaseModel], build: Callable[[], Any]
) -> HttpResponse:
    """The page `key`: kept, or `build()` validated by `schema` and written out as ninja would answer it."""
    keep = settings.API_LIST_CACHE_SECONDS
    value = epoch.read() if keep else None
    kept = _kept.get(key) if value is not None else None
    if kept is not None and kept[1] == value and time.monotonic() - kept[0] < keep:
        return HttpResponse(kept[2], content_type=CONTENT_TYPE)
    context = {"request": request, "response_status": 200}
    data = schema.model_validate(build(), context=context).model_dump(context=context)
    body = _renderer.render(request, data, response_status=200)
    if value is not None:
        with _storing:
            _kept.pop(key, None)
            _kept[key] = (time.monotonic(), value, body)
            if len(_kept) > KEPT_MAX:
                del _kept[next(iter(_kept))]
    return HttpResponse(body, content_type=CONTENT_TYPE)
