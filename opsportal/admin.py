"""The portal's admin site: branded, the home page, and the "admin" channel for what its views change."""

import functools
from collections.abc import Callable
from dataclasses import replace

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest, HttpResponse

from apps.core import context


class OpsportalAdminSite(admin.AdminSite):
    site_header = "opsportal"
    site_title = "opsportal"
    index_title = "Operations"

    def admin_view(self, view: Callable, cacheable: bool = False) -> Callable:
        protected = super().admin_view(view, cacheable)

        @functools.wraps(protected)
        def in_admin_channel(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            # The audit trail records changes made here as admin.add / admin.change / admin.delete.
            with context.bound(replace(context.current(), channel="admin")):
                return protected(request, *args, **kwargs)

        return in_admin_channel


class OpsportalAdminConfig(AdminConfig):
    default_site = "opsportal.admin.OpsportalAdminSite"
