"""The hooks app in the admin (registered on import, as admin autodiscovery expects)."""

from apps.hooks import admin_alertmanager

__all__ = ["admin_alertmanager"]
