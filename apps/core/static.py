"""Static files served in front of Django, from where the staticfiles finders look.

Wrapping the ASGI (or WSGI) application, rather than a middleware, keeps static
requests out of the middleware chain entirely and serves them natively in each
protocol: no collectstatic step, no CDN, no thread switch per file.
"""

from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.contrib.staticfiles.finders import get_finders
from servestatic.base import ServeStaticBase

Server = TypeVar("Server", bound=ServeStaticBase)


def with_static_files(application: Callable, server: type[Server]) -> Server:
    app = server(application, max_age=3600)
    for finder in get_finders():
        for prefix, storage in _storages(finder):
            app.add_files(storage.location, prefix=settings.STATIC_URL + prefix)
    return app


def _storages(finder: object) -> list[tuple[str, object]]:
    """(URL prefix, storage) for each folder a finder searches."""
    storages = getattr(finder, "storages", {})
    return [(getattr(storage, "prefix", None) or "", storage) for storage in storages.values()]
