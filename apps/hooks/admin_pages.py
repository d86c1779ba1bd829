"""The hooks app's own admin pages: a token or secret shown once, and the forms that lead to it."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers


def admin_page(
    model_admin: admin.ModelAdmin, request: HttpRequest, template: str, title: str, **context: Any
) -> TemplateResponse:
    """admin/<app>/<model>/<template> with the admin's context; no-store, as a secret must not outlive its page."""
    opts = model_admin.opts
    response = TemplateResponse(
        request,
        f"admin/{opts.app_label}/{opts.model_name}/{template}",
        {**model_admin.admin_site.each_context(request), "opts": opts, "title": title, **context},
    )
    add_never_cache_headers(response)
    return response
