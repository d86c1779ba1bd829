"""HealthTarget in the admin: the endpoints operators watch, validated on save, checked on demand.

The model's clean() refuses what a check could not use (a malformed or
forbidden URL, a TCP target without a port, thresholds that contradict each
other), so the mistake is seen when it is typed, not at 3 a.m. The overview of
every check's state and history are pages of their own (the dashboard's).
"""

from typing import Any
from urllib.parse import urlsplit

from django.contrib import admin, messages
from django.db.models import OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Concat
from django.http import HttpRequest

from apps.audit.admin import AuditHistoryMixin
from apps.health import (
    admin_pages,  # noqa: F401 - registers the overview and the history
    services,
)
from apps.health.checks import Status
from apps.health.models import TARGET_PREFIX, CheckState, HealthTarget


def safe_address(target: HealthTarget) -> str:
    """scheme://host:port/… for a URL: its path or query may be a credential."""
    if target.kind == HealthTarget.Kind.TCP:
        return target.address
    parts = urlsplit(target.url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    rest = "/…" if parts.path not in ("", "/") or parts.query else "/"
    return f"{parts.scheme}://{parts.hostname or ''}{port}{rest}"


@admin.register(HealthTarget)
class HealthTargetAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ["name", "kind", "destination", "enabled", "is_internal", "interval_seconds", "last_status"]
    list_filter = ["kind", "enabled", "is_internal"]
    search_fields = ["name", "url", "host", "description"]
    actions = ["check_now"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "enabled", "description"]}),
        ("HTTP(S)", {"fields": ["url", "method", "expected_status", "keyword"]}),
        ("TCP", {"fields": ["host", "port"]}),
        ("How", {"fields": ["is_internal", "timeout_seconds", "interval_seconds", "for_seconds", "alert_on"]}),
        (
            "Thresholds (empty: the HEALTH_* setting)",
            {"fields": ["latency_warning_ms", "latency_critical_ms", "cert_warning_days", "cert_critical_days"]},
        ),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        latest = CheckState.objects.filter(name=Concat(Value(TARGET_PREFIX), OuterRef("name")))
        return super().get_queryset(request).annotate(last=Subquery(latest.values("status")[:1]))

    @admin.display(description="destination")
    def destination(self, target: HealthTarget) -> str:
        return safe_address(target)

    @admin.display(description="last status", ordering="last")
    def last_status(self, target: HealthTarget) -> str:
        return getattr(target, "last", None) or "—"

    @admin.action(description="Check the selected targets now (nothing is stored)")
    def check_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        names = [target.check_name for target in queryset.filter(enabled=True)]
        skipped = queryset.filter(enabled=False).count()
        for result in services.run_checks(names) if names else []:
            level = {Status.OK: messages.SUCCESS, Status.WARNING: messages.WARNING}.get(result.status, messages.ERROR)
            self.message_user(request, f"{result.name} is {result.status}: {result.message}", level)
        if skipped:
            self.message_user(request, f"{skipped} disabled target(s) not checked.", messages.INFO)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        form.base_fields["url"].widget.attrs["size"] = 80
        return form
