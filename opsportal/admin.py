"""The portal's admin site: branded, the home page, and the "admin" channel for what its views change."""

import functools
import math
from collections.abc import Callable
from dataclasses import replace

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse

from apps.core import context


class LoginForm(AdminAuthenticationForm):
    def get_invalid_login_error(self) -> ValidationError:
        retry_after = getattr(self.request, "login_retry_after", None)
        if retry_after:
            minutes = math.ceil(retry_after / 60)
            return ValidationError(
                f"Too many failed logins. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
                code="locked_out",
            )
        return super().get_invalid_login_error()


class OpsportalAdminSite(admin.AdminSite):
    site_header = "opsportal"
    site_title = "opsportal"
    index_title = "Operations"
    login_form = LoginForm

    def admin_view(self, view: Callable, cacheable: bool = False) -> Callable:
        protected = super().admin_view(view, cacheable)

        @functools.wraps(protected)
        def in_admin_channel(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            # The audit trail records changes made here as admin.add / admin.change / admin.delete.
            with context.bound(replace(context.current(), channel="admin")):
                return protected(request, *args, **kwargs)

        return in_admin_channel
