"""The hooks in the admin: each part registers its models on import (admin autodiscovery imports this)."""

from apps.hooks import admin_events

__all__ = ["admin_events"]
