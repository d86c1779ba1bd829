"""Admin pages for records that nobody edits by hand."""

from typing import Any

from django.http import HttpRequest


class ReadOnlyAdminMixin:
    """View only, superusers included: audit events, alerts and notifications change through their services."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
