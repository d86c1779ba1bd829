"""The hooks app in the admin: each part registers its models on import (admin autodiscovery imports this)."""

from apps.hooks import admin_alertmanager, admin_events, admin_heartbeats, admin_tokens

__all__ = ["admin_alertmanager", "admin_events", "admin_heartbeats", "admin_tokens"]
