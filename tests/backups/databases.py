"""A database alias that exists for one test: a second database for the engines to dump."""

import contextlib
from collections.abc import Iterator

from django.db import connections


@contextlib.contextmanager
def extra_alias(alias: str, settings_dict: dict) -> Iterator[str]:
    """settings.DATABASES[alias] = settings_dict for the `with` body, its connection closed after."""
    # configure_settings() fills in the defaults (and insists on a "default" entry).
    configured = connections.configure_settings({"default": connections.settings["default"], alias: settings_dict})
    connections.settings[alias] = configured[alias]
    try:
        yield alias
    finally:
        for connection in connections.all(initialized_only=True):
            if connection.alias == alias:
                connection.close()
                del connections[alias]
        del connections.settings[alias]
