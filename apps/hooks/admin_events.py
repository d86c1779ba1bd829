"""Standard Webhooks endpoints and the events they received, in the admin.

A signing secret is shown once: on the page that answers the creation (or a
rotation), with ready-to-run examples of signing a test event; afterwards only
its first characters. The mapping is edited as JSON and refused on save with
one line per mistake, since an event it cannot map is refused at 3 a.m.
Received events are records: read-only.
"""

import json
from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms.fields import InvalidJSONInput
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from apps.alerts.admin.config import mask_secret
from apps.alerts.models import Alert
from apps.audit.admin import AuditHistoryMixin, CappedCountPaginator
from apps.core import standard_webhooks
from apps.core.readonly import ReadOnlyAdminMixin
from apps.hooks import events, mapping
from apps.hooks.admin_pages import admin_page
from apps.hooks.models import WebhookEndpoint, WebhookMessage

MAPPING_HELP = (
    'JSON: which event types fire or resolve an alert and where its values are, e.g. {"fire": ["incident.opened"], '
    '"resolve": ["incident.closed"], "key": "data.id", "summary": "data.title", "severity": "data.severity"}. '
    "Members: type, fire, resolve, key, summary, severity, severities, description, labels; a value is a dotted "
    'path into the event or {"path": ..., "default": ...}. Empty: every event is stored, none alerts. '
    "The alerts' source is \"events:\" and the endpoint's name."
)
PAYLOAD_SHOWN = 200_000  # characters of a received event shown on its page


class MappingField(forms.JSONField):
    """The mapping as indented JSON, to read and edit as the documentation shows it."""

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False)


class WebhookEndpointForm(forms.ModelForm):
    mapping = MappingField(
        required=False, help_text=MAPPING_HELP, widget=forms.Textarea(attrs={"rows": 14, "class": "vLargeTextField"})
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["name", "enabled", "mapping"]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if len(name) > events.NAME_MAX_LENGTH:  # it becomes the alerts' source, "events:<name>"
            raise ValidationError(f"At most {events.NAME_MAX_LENGTH} characters.", code="max_length")
        return name

    def clean_mapping(self) -> Any:
        raw = self.cleaned_data["mapping"]
        if raw in (None, ""):
            return {}
        try:
            mapping.parse(raw)
        except mapping.InvalidMappingError as error:
            raise ValidationError([ValidationError(problem, code="mapping") for problem in error.problems]) from None
        return raw


class RotateForm(forms.Form):
    keep_hours = forms.IntegerField(
        label="Keep the current secret for (hours)",
        min_value=0,
        max_value=events.MAX_SECRET_OVERLAP.days * 24,
        initial=24,
        help_text="Both secrets verify meanwhile, so that the sender can switch; 0 stops the current one now "
        "(do that if it leaked).",
    )


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(AuditHistoryMixin, admin.ModelAdmin):
    form = WebhookEndpointForm
    change_form_template = "admin/hooks/webhookendpoint/change_form.html"
    list_display = ["name", "enabled", "hook_path", "fires_on", "old_secret_until", "last_received_at"]
    list_filter = ["enabled"]
    search_fields = ["name"]
    readonly_fields = ["hook_path", "masked_secret", "old_secret_until", "mapping_in_effect", "received",
                       "created_at", "last_received_at"]  # fmt: skip

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return ["name", "enabled", "mapping"]
        return ["name", "enabled", "hook_path", "masked_secret", "old_secret_until", "mapping", "mapping_in_effect",
                "received", "created_at", "last_received_at"]  # fmt: skip

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The name is in the URL senders post to and in its alerts' source: renaming would orphan both.
        return [*self.readonly_fields, "name"] if obj is not None else self.readonly_fields

    @admin.display(description="URL path")
    def hook_path(self, endpoint: WebhookEndpoint) -> str:
        return reverse("hooks_events", kwargs={"name": endpoint.name})

    @admin.display(description="fires on")
    def fires_on(self, endpoint: WebhookEndpoint) -> str:
        fire = endpoint.mapping.get("fire") if isinstance(endpoint.mapping, dict) else None
        return ", ".join(map(str, fire)) if isinstance(fire, list) and fire else "—"

    @admin.display(description="secret")
    def masked_secret(self, endpoint: WebhookEndpoint) -> str:
        return mask_secret(endpoint.secret)

    @admin.display(description="old secret verifies until")
    def old_secret_until(self, endpoint: WebhookEndpoint) -> Any:
        return endpoint.previous_secret_expires_at if endpoint.previous_secret else "—"

    @admin.display(description="mapping in effect")
    def mapping_in_effect(self, endpoint: WebhookEndpoint) -> str:
        try:
            text = json.dumps(mapping.parse(endpoint.mapping).model_dump(), indent=2)
        except mapping.InvalidMappingError as error:
            return format_html('<span class="errornote">{}</span>', error)
        return format_html("<pre>{}</pre>", text)

    @admin.display(description="received events")
    def received(self, endpoint: WebhookEndpoint) -> str:
        url = reverse("admin:hooks_webhookmessage_changelist") + "?" + urlencode({"endpoint__id__exact": endpoint.pk})
        return format_html('<a href="{}">Events received by {}</a>', url, endpoint.name)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        # Saving always leads to the page that shows the secret once: no "add another" or "continue".
        buttons = {"show_save_and_add_another": False, "show_save_and_continue": False}
        return super().add_view(request, form_url, {**(extra_context or {}), **buttons})

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: forms.Form, change: bool) -> None:
        if not change:
            obj.secret = standard_webhooks.new_secret()  # shown once, by response_add
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: WebhookEndpoint, post_url_continue: Any = None) -> HttpResponse:
        return self.secret_page(request, obj, obj.secret, rotated=False)

    def get_urls(self) -> list:
        rotate = self.admin_site.admin_view(self.rotate_view)
        return [path("<path:object_id>/rotate-secret/", rotate, name="hooks_webhookendpoint_rotate"),
                *super().get_urls()]  # fmt: skip

    def rotate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Ask how long the current secret keeps working; then make a new one and show it, once."""
        endpoint = get_object_or_404(WebhookEndpoint, pk=object_id)
        if not self.has_change_permission(request, endpoint):
            raise PermissionDenied
        form = RotateForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            keep = timedelta(hours=form.cleaned_data["keep_hours"])
            secret = events.endpoint_rotate_secret(endpoint, keep_previous_for=keep)
            endpoint.refresh_from_db()
            return self.secret_page(request, endpoint, secret, rotated=True)
        title = f"Rotate the secret of {endpoint}"
        return admin_page(self, request, "rotate.html", title, original=endpoint, media=self.media, form=form)

    def secret_page(self, request: HttpRequest, endpoint: WebhookEndpoint, secret: str, *, rotated: bool) -> Any:
        try:
            in_effect = mapping.parse(endpoint.mapping)
        except mapping.InvalidMappingError:
            in_effect = mapping.EventMapping()
        return admin_page(
            self, request, "secret.html", f"The signing secret of {endpoint}",
            original=endpoint, media=self.media, secret=secret, rotated=rotated,
            url=request.build_absolute_uri(reverse("hooks_events", kwargs={"name": endpoint.name})),
            body=json.dumps(mapping.example_event(in_effect, endpoint.name), separators=(",", ":")),
            tolerance=settings.HOOKS_TIMESTAMP_TOLERANCE_SECONDS,
        )  # fmt: skip


@admin.register(WebhookMessage)
class WebhookMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["message_id", "endpoint", "event_type", "outcome", "alert", "sent_at", "received_at"]
    list_filter = ["outcome", "endpoint"]
    search_fields = ["=message_id", "event_type"]
    list_select_related = ["endpoint"]
    ordering = ["-received_at"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 100
    fields = ["endpoint", "message_id", "event_type", "outcome", "alert_link", "sent_at", "received_at",
              "payload_json"]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="alert")
    def alert(self, message: WebhookMessage) -> str:
        return f"{message.alert_source}/{message.alert_key}" if message.alert_source else "—"

    @admin.display(description="alert")
    def alert_link(self, message: WebhookMessage) -> str:
        found = Alert.objects.filter(source=message.alert_source, key=message.alert_key).first()
        if found is None:
            return self.alert(message)
        return format_html('<a href="{}">{}</a>', reverse("admin:alerts_alert_change", args=[found.pk]), found)

    @admin.display(description="payload")
    def payload_json(self, message: WebhookMessage) -> str:
        text = json.dumps(message.payload, indent=2, ensure_ascii=False)
        cut = f"\n… ({len(text) - PAYLOAD_SHOWN} more characters)" if len(text) > PAYLOAD_SHOWN else ""
        return format_html("<pre>{}{}</pre>", text[:PAYLOAD_SHOWN], cut)
