"""The incident engine in the admin (registered on import, as admin autodiscovery expects)."""

from apps.alerts.admin import config, records

__all__ = ["config", "records"]
