"""Heartbeats in the admin: edited through the service's validation, with their ping URLs and recent pings.

The form runs apps.hooks.heartbeats.heartbeat_validate (one set of rules and
messages with the API), and saving calls heartbeat_create / heartbeat_update /
heartbeat_delete, so the deadline and the alert follow a change as they do from
the API. Pings are records: shown, newest first, never edited.
"""

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html

from apps.alerts.models import Severity
from apps.audit.admin import AuditHistoryMixin
from apps.hooks import heartbeats
from apps.hooks.models import Heartbeat, HeartbeatPing
from apps.hooks.views.heartbeat import ping_urls

RECENT_PINGS = 20
BODY_SHOWN = 300  # characters of a ping's body in the list (10 kB are kept)
CURL = "curl -fsS -m 10 --retry 5 -o /dev/null"


class HooksMedia:
    css = {"all": ["opsportal/hooks.css"]}
    js = ["opsportal/hooks.js"]  # the ping URLs' copy buttons


def badge(heartbeat: Heartbeat) -> str:
    value = heartbeat.status if heartbeat.enabled else "disabled"
    return format_html('<span class="hooks-badge hooks-status-{}">{}</span>', value, value)


def schedule(heartbeat: Heartbeat) -> str:
    if heartbeat.cron:
        return f"{heartbeat.cron} ({heartbeat.timezone})"
    return f"every {heartbeats.span_seconds(heartbeat.period_seconds or 0)}"


class HeartbeatForm(forms.ModelForm):
    severity = forms.ChoiceField(choices=Severity.choices, initial=Severity.ERROR, help_text="Of the alert it fires.")

    class Meta:
        model = Heartbeat
        fields = list(heartbeats.EDITABLE)
        widgets = {"description": forms.Textarea(attrs={"rows": 3, "cols": 80})}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:  # a field the form refused: its message is enough
            return cleaned
        try:
            cleaned.update(heartbeats.heartbeat_validate(cleaned, instance=self.instance if self.instance.pk else None))
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
        return cleaned

    def validate_unique(self) -> None:
        """The service checks the name (one message, the same as the API's)."""


class HeartbeatPingInline(admin.TabularInline):
    model = HeartbeatPing
    fields = readonly_fields = ["received", "kind", "method", "ip", "user_agent", "body_start"]
    extra = 0
    can_delete = False
    verbose_name_plural = f"Recent pings (the newest {RECENT_PINGS})"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        heartbeat_id = (request.resolver_match.kwargs if request.resolver_match else {}).get("object_id")
        newest = HeartbeatPing.objects.filter(heartbeat_id=heartbeat_id).order_by("-at").values("pk")[:RECENT_PINGS]
        return super().get_queryset(request).filter(pk__in=Subquery(newest)).order_by("-at")

    # Whoever may view the heartbeat sees its pings; nobody adds, edits or deletes them.
    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("hooks.view_heartbeat")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="at")
    def received(self, ping: HeartbeatPing) -> str:
        return timezone.localtime(ping.at).strftime("%Y-%m-%d %H:%M:%S %Z")  # seconds matter between pings

    @admin.display(description="body")
    def body_start(self, ping: HeartbeatPing) -> str:
        return ping.body[:BODY_SHOWN] + ("…" if len(ping.body) > BODY_SHOWN else "")


@admin.register(Heartbeat)
class HeartbeatAdmin(AuditHistoryMixin, admin.ModelAdmin):
    change_form_template = "admin/hooks/heartbeat/change_form.html"
    form = HeartbeatForm
    list_display = ["name", "status_badge", "schedule", "grace", "last_ping_at", "deadline", "enabled"]
    list_filter = ["status", "enabled"]
    search_fields = ["name", "description"]
    readonly_fields = ["uuid", "status", "last_ping_at", "last_start_at", "deadline", "created_at", "created_by"]
    fieldsets = [
        (None, {"fields": ["name", "enabled", "description", "severity"]}),
        ("Schedule: a period or a cron expression", {"fields": ["period_seconds", "cron", "timezone",
                                                              "grace_seconds", "max_runtime_seconds"]}),
        ("State", {"fields": readonly_fields}),
    ]  # fmt: skip
    inlines = [HeartbeatPingInline]
    Media = HooksMedia

    @admin.display(description="status", ordering="status")
    def status_badge(self, heartbeat: Heartbeat) -> str:
        return badge(heartbeat)

    @admin.display(description="schedule")
    def schedule(self, heartbeat: Heartbeat) -> str:
        return schedule(heartbeat)

    @admin.display(description="grace", ordering="grace_seconds")
    def grace(self, heartbeat: Heartbeat) -> str:
        return heartbeats.span_seconds(heartbeat.grace_seconds)

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], add: bool = False, change: bool = False,
        form_url: str = "", obj: Heartbeat | None = None,
    ) -> HttpResponse:  # fmt: skip
        if obj is not None and obj.pk:
            urls = ping_urls(request, obj)
            context.update(ping_urls=urls, curl=CURL, cron_example=f"{CURL} {urls['success']}")
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(self, request: HttpRequest, obj: Heartbeat, form: HeartbeatForm, change: bool) -> None:
        values = {field: form.cleaned_data[field] for field in heartbeats.EDITABLE}
        if change:
            heartbeats.heartbeat_update(obj, **values)
        else:
            obj.pk = heartbeats.heartbeat_create(actor=request.user, **values).pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Heartbeat) -> None:
        heartbeats.heartbeat_delete(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for heartbeat in queryset:
            heartbeats.heartbeat_delete(heartbeat)
