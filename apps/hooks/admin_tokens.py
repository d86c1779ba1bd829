"""API tokens in the admin: made through tokens.token_create, shown once, then only revoked.

The token itself is on the one page that answers the form, and nowhere else:
not in a message (messages live in the session or a cookie), not in the list,
not in the audit trail (which has its digest redacted). Rows are never edited
or deleted here: a token is revoked, and the row stays as the record of who
could act when. Permissions are the model's: view_apitoken to see tokens,
add_apitoken to make one, change_apitoken to revoke.
"""

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.db.models.functions import Now
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import path
from django.utils import timezone

from apps.audit.admin import AuditHistoryMixin
from apps.hooks import tokens
from apps.hooks.admin_pages import admin_page
from apps.hooks.models import ApiToken, Scope

LIFETIMES = {"30d": timedelta(days=30), "90d": timedelta(days=90), "1y": timedelta(days=365), "never": None}


class TokenCreationForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What it is for, e.g. 'ci-deploy' or 'grafana'.")
    user = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by(get_user_model().USERNAME_FIELD),
        help_text="The token acts as this user, with this user's permissions.",
    )
    scope = forms.ChoiceField(
        choices=Scope.choices, initial=Scope.READ, help_text="read: GET only; write: read and change."
    )
    lifetime = forms.ChoiceField(
        choices=[("30d", "30 days"), ("90d", "90 days"), ("1y", "1 year"), ("never", "never expires")],
        initial="90d",
    )


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("active", "Active"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        unexpired = Q(expires_at__isnull=True) | Q(expires_at__gt=Now())
        if self.value() == "active":
            return queryset.filter(unexpired, revoked_at__isnull=True)
        if self.value() == "expired":
            return queryset.filter(~unexpired, revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(AuditHistoryMixin, admin.ModelAdmin):
    change_form_template = "admin/hooks/apitoken/change_form.html"
    list_display = ["name", "user", "scope", "prefix", "created_at", "expires_at", "last_used", "revoked_at",
                    "active"]  # fmt: skip
    list_filter = [StatusFilter, "scope", ("user", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user"]
    fields = ["name", "user", "scope", "prefix", "created_at", "created_by", "expires_at", "last_used_at",
              "last_used_ip", "revoked_at", "active"]  # fmt: skip
    readonly_fields = fields
    actions = ["revoke"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # made once, then only revoked (has_revoke_permission)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("hooks.change_apitoken")

    @admin.display(description="last used")
    def last_used(self, token: ApiToken) -> str:
        if token.last_used_at is None:
            return "never"
        return f"{timezone.localtime(token.last_used_at):%Y-%m-%d %H:%M} from {token.last_used_ip or '?'}"

    @admin.display(description="active", boolean=True)
    def active(self, token: ApiToken) -> bool:
        return token.is_active(timezone.now())

    @admin.action(description="Revoke the selected tokens", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        revoked = sum(tokens.token_revoke(token) for token in queryset.order_by("pk"))
        skipped = queryset.count() - revoked
        self.message_user(request, f"{revoked} revoked" + (f", {skipped} already were." if skipped else "."))

    # ------------------------------------------------------------ made once, shown once

    def get_urls(self) -> list:
        revoke = self.admin_site.admin_view(self.revoke_view)
        return [path("<path:object_id>/revoke/", revoke, name="hooks_apitoken_revoke"), *super().get_urls()]

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        """The form; once valid, the token is made and shown on the answer to this POST, and never again."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = TokenCreationForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            data = form.cleaned_data
            try:
                row, token = tokens.token_create(
                    user=data["user"], name=data["name"], scope=data["scope"],
                    expires_in=LIFETIMES[data["lifetime"]], actor=request.user,
                )  # fmt: skip
            except tokens.TokenError as exc:
                form.add_error(None, str(exc))
            else:
                row.refresh_from_db()  # created_at is the database's
                return admin_page(self, request, "created.html", "API token created", token=token, row=row)
        return admin_page(self, request, "add.html", "Add API token", form=form)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> Any:
        extra = {**(extra_context or {}), "can_revoke": self.has_revoke_permission(request)}
        return super().change_view(request, object_id, form_url, extra)

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The button on a token's page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        token = self.get_object(request, object_id)
        if token is None:
            raise Http404("No such API token.")
        if tokens.token_revoke(token):
            self.message_user(request, f"Token {token} revoked: it no longer works.")
        else:
            self.message_user(request, f"Token {token} was already revoked.", messages.WARNING)
        return redirect("admin:hooks_apitoken_change", token.pk)
