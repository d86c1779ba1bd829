"""Alertmanager receivers in the admin: each is made with a token, shown once with the alertmanager.yml to paste.

Only the token's digest and first characters are stored; "Generate a new token"
replaces it (the old one stops working at once) and shows the new one the same
way. Changes are in the audit trail (apps.hooks registers the model, digest redacted).
"""

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from apps.alerts.models import Severity
from apps.audit.admin import AuditHistoryMixin
from apps.hooks import alertmanager
from apps.hooks.admin_pages import admin_page
from apps.hooks.models import AlertmanagerReceiver


def receiver_config(name: str, url: str, token: str) -> str:
    """The `receivers:` entry of an alertmanager.yml that sends to this receiver (JSON strings are YAML strings)."""
    return "\n".join(
        [
            "receivers:",
            f"  - name: {json.dumps('opsportal-' + name)}",
            "    webhook_configs:",
            f"      - url: {json.dumps(url)}",
            "        send_resolved: true",
            "        http_config:",
            "          authorization:",
            "            type: Bearer",
            f"            credentials: {json.dumps(token)}",
        ]
    )


class ReceiverForm(forms.ModelForm):
    default_severity = forms.ChoiceField(
        choices=Severity.choices,
        initial=Severity.WARNING,
        help_text="For alerts whose 'severity' label is missing or not one the portal knows "
        f"({', '.join(sorted(alertmanager.SEVERITIES))}).",
    )

    class Meta:
        model = AlertmanagerReceiver
        fields = ["name", "enabled", "default_severity"]
        help_texts = {"name": "Part of the hook's URL: /hooks/alertmanager/<name>/. Letters, digits, - and _."}


@admin.register(AlertmanagerReceiver)
class AlertmanagerReceiverAdmin(AuditHistoryMixin, admin.ModelAdmin):
    form = ReceiverForm
    list_display = ["name", "enabled", "default_severity", "token_start", "last_received_at", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["name"]
    actions = ["new_token"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["hook_path", "token_start", "created_at", "last_received_at"] if obj is not None else []

    @admin.display(description="token")
    def token_start(self, receiver: AlertmanagerReceiver) -> str:
        return f"{receiver.token_prefix}…" if receiver.token_prefix else "—"

    @admin.display(description="hook URL")
    def hook_path(self, receiver: AlertmanagerReceiver) -> str:
        return reverse("hooks-alertmanager", args=[receiver.name])

    def save_model(self, request: HttpRequest, obj: AlertmanagerReceiver, form: forms.Form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
        else:  # created with its token, which only this request's answer shows
            request.alertmanager_tokens = [(obj, alertmanager.receiver_token_new(obj))]

    def response_add(self, request: HttpRequest, obj: AlertmanagerReceiver, post_url_continue: Any = None) -> Any:
        return self.token_page(request, request.alertmanager_tokens)

    @admin.action(description="Generate a new token for the selected receivers", permissions=["change"])
    def new_token(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        issued = [(receiver, alertmanager.receiver_token_new(receiver)) for receiver in queryset.order_by("name")]
        return self.token_page(request, issued)

    def token_page(self, request: HttpRequest, issued: list[tuple[AlertmanagerReceiver, str]]) -> HttpResponse:
        """The new tokens, each with its receiver's alertmanager.yml entry; never cached, never shown again."""
        receivers = []
        for receiver, token in issued:
            url = request.build_absolute_uri(reverse("hooks-alertmanager", args=[receiver.name]))
            config = receiver_config(receiver.name, url, token)
            receivers.append({"receiver": receiver, "token": token, "config": config,
                              "field_id": f"alertmanager-token-{receiver.pk}"})  # fmt: skip
        title = "Alertmanager receiver token" if len(issued) == 1 else "Alertmanager receiver tokens"
        return admin_page(self, request, "token.html", title, receivers=receivers)
