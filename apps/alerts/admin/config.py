"""Where notifications go and when nobody is told: channels, routes, escalation policies, silences.

Edited by hand, with validation on save (apps/alerts/forms.py): a rule the engine
cannot read would be skipped at 3 a.m., so it is refused here instead. Every
change is in the audit trail (apps.alerts registers these models), linked from
each page as "Audit history".
"""

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.urls import path
from django.utils import timezone

from apps.alerts import delivery, services, silences
from apps.alerts.admin.records import AlertsMedia, plural
from apps.alerts.forms import NotificationChannelForm, RouteForm, SilenceForm
from apps.alerts.models import EscalationPolicy, EscalationStep, Notification, NotificationChannel, Route, Silence
from apps.audit.admin import AuditHistoryMixin

# ---------------------------------------------------------------- notification channels


def mask_url(url: str) -> str:
    """scheme://host/…: the path and query of a Slack or webhook URL often are the credential."""
    if not url:
        return "—"
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/…" if parts.hostname else "…"


def mask_secret(secret: str) -> str:
    return f"{secret[:10]}…" if secret else "—"


@admin.register(NotificationChannel)
class NotificationChannelAdmin(AuditHistoryMixin, admin.ModelAdmin):
    change_form_template = "admin/alerts/notificationchannel/change_form.html"
    form = NotificationChannelForm
    list_display = ["name", "kind", "enabled", "destination", "internal", "secret_set", "rate_limit_per_minute"]
    list_filter = ["kind", "enabled", "internal"]
    search_fields = ["name"]
    readonly_fields = ["created_at", "masked_url", "masked_secret", "header_names"]
    Media = AlertsMedia

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(self.form.Meta.fields)
        if obj is not None and not self.has_change_permission(request, obj):  # view only: no credentials
            swap = {"url": "masked_url", "secret": "masked_secret", "headers": "header_names"}
            fields = [swap.get(name, name) for name in fields]
        return [*fields, "created_at"] if obj is not None else fields

    @admin.display(description="destination")
    def destination(self, channel: NotificationChannel) -> str:
        if channel.kind == NotificationChannel.Kind.EMAIL:
            return ", ".join(channel.recipients.split()) or "—"
        return mask_url(channel.url)

    @admin.display(description="secret", boolean=True)
    def secret_set(self, channel: NotificationChannel) -> bool | None:
        return bool(channel.secret) if channel.kind == NotificationChannel.Kind.WEBHOOK else None

    @admin.display(description="URL")
    def masked_url(self, channel: NotificationChannel) -> str:
        return mask_url(channel.url)

    @admin.display(description="secret")
    def masked_secret(self, channel: NotificationChannel) -> str:
        return mask_secret(channel.secret)

    @admin.display(description="headers")
    def header_names(self, channel: NotificationChannel) -> str:
        return ", ".join(sorted(channel.headers or {})) or "—"

    def get_urls(self) -> list:
        send_test = self.admin_site.admin_view(self.send_test_view)
        name = "alerts_notificationchannel_send_test"
        return [path("<path:object_id>/send-test/", send_test, name=name), *super().get_urls()]

    def send_test_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Send a test notification now, synchronously, and say how it went."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        channel = get_object_or_404(NotificationChannel, pk=object_id)
        if not self.has_change_permission(request, channel):
            raise PermissionDenied
        notification = delivery.send_test(channel, actor=request.user)
        sent = f"Test notification to {channel.name}"
        if notification.status == Notification.Status.DELIVERED:
            status = f" (status {notification.last_status})" if notification.last_status else ""
            self.message_user(request, f"{sent} delivered{status}.")
        elif notification.status == Notification.Status.DEAD:
            self.message_user(request, f"{sent} failed: {notification.last_error}", messages.ERROR)
        else:  # a failure worth retrying, or the rate limit: the sweeper tries again until the give-up time
            why = notification.last_error or "the channel's rate limit is reached"
            self.message_user(request, f"{sent} not delivered yet: {why}. It is retried in the background.",
                              messages.WARNING)  # fmt: skip
        return redirect("admin:alerts_notificationchannel_change", channel.pk)


# ---------------------------------------------------------------- routing and escalation


@admin.register(Route)
class RouteAdmin(AuditHistoryMixin, admin.ModelAdmin):
    form = RouteForm
    list_display = ["name", "position", "is_default", "severity_list", "matcher_list", "policy", "group_list",
                    "group_wait_seconds", "repeat_interval_minutes"]  # fmt: skip
    list_select_related = ["policy"]
    search_fields = ["name"]

    @admin.display(description="severities")
    def severity_list(self, route: Route) -> str:
        return ", ".join(route.severities) or "any"

    @admin.display(description="matchers")
    def matcher_list(self, route: Route) -> str:
        return ", ".join(route.matchers) or "—"

    @admin.display(description="group by")
    def group_list(self, route: Route) -> str:
        return ", ".join(route.group_by) or "—"


class EscalationStepInline(admin.TabularInline):
    model = EscalationStep
    fields = ["position", "delay_minutes", "channels"]
    extra = 1
    formfield_overrides = {models.ManyToManyField: {"widget": forms.CheckboxSelectMultiple}}


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ["name", "step_count", "repeat", "repeat_delay_minutes"]
    search_fields = ["name"]
    inlines = [EscalationStepInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(step_count=Count("steps"))

    @admin.display(description="steps", ordering="step_count")
    def step_count(self, policy: EscalationPolicy) -> int:
        return policy.step_count


# ---------------------------------------------------------------- silences


@admin.register(Silence)
class SilenceAdmin(AuditHistoryMixin, admin.ModelAdmin):
    form = SilenceForm
    list_display = ["comment_line", "matcher_list", "starts_at", "ends_at", "repeat", "repeat_until", "active_now",
                    "created_by"]  # fmt: skip
    list_filter = ["repeat"]
    search_fields = ["comment"]
    list_select_related = ["created_by"]
    readonly_fields = ["created_by", "created_at"]
    actions = ["expire"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [*SilenceForm.Meta.fields, *(self.readonly_fields if obj is not None else [])]

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        now = timezone.now().replace(second=0, microsecond=0)
        return {"starts_at": now, "ends_at": now + timedelta(hours=2), **super().get_changeform_initial_data(request)}

    def save_model(self, request: HttpRequest, obj: Silence, form: forms.Form, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.display(description="comment")
    def comment_line(self, silence: Silence) -> str:
        return silence.comment if len(silence.comment) <= 80 else f"{silence.comment[:79]}…"

    @admin.display(description="matchers")
    def matcher_list(self, silence: Silence) -> str:
        return ", ".join(silence.matchers)

    @admin.display(description="active now", boolean=True)
    def active_now(self, silence: Silence) -> bool:
        return silences.window(silence, timezone.now()) is not None

    @admin.action(description="End the selected silences now", permissions=["change"])
    def expire(self, request: HttpRequest, queryset: QuerySet) -> None:
        ended = sum(services.silence_expire(silence) for silence in queryset)
        self.message_user(request, f"{plural(ended, 'silence')} ended.")
