"""Alerts and the notifications sent about them: records, read-only in the admin.

Nobody edits or deletes them by hand. People act on alerts through the services
(acknowledge, unacknowledge, resolve: audited and broadcast there), silence them
from the list, and replay dead notifications.
"""

import json
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from apps.alerts import delivery, services
from apps.alerts.forms import SilenceForForm, exact_matcher
from apps.alerts.models import Alert, DeliveryAttempt, Notification, Silence, Transition
from apps.audit.admin import CappedCountPaginator
from apps.core.readonly import ReadOnlyAdminMixin

TIMELINE_ROWS = 200
DELIVERY_ROWS = 50


class AlertsMedia:
    css = {"all": ["opsportal/alerts.css"]}


def badge(kind: str, value: str, label: str = "") -> str:
    return format_html('<span class="alert-badge alert-{}-{}">{}</span>', kind, value, label or value)


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def tally(done: int, what: str, skipped: int, why: str) -> str:
    """An action's report, e.g. '3 acknowledged, 1 was not firing.'"""
    were = "was" if skipped == 1 else "were"
    return f"{done} {what}" + (f", {skipped} {were} {why}" if skipped else "") + "."


# ---------------------------------------------------------------- alerts


class SilencedFilter(admin.SimpleListFilter):
    title = "silenced"
    parameter_name = "silenced"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("yes", "no"):
            return queryset.filter(silenced_by__isnull=self.value() == "no")
        return queryset


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["severity_badge", "state_badge", "fingerprint", "summary", "episode", "fire_count", "started_at",
                    "last_fired_at", "silenced", "acknowledged_by"]  # fmt: skip
    list_display_links = ["fingerprint"]
    list_filter = ["state", "severity", "source", SilencedFilter]
    search_fields = ["source", "key", "summary"]
    list_select_related = ["acknowledged_by"]
    show_full_result_count = False
    list_per_page = 100
    actions = ["acknowledge", "resolve", "silence_1h", "silence_4h", "silence_for"]
    fieldsets = [
        (None, {"fields": ["source", "key", "severity", "state", "summary", "description", "labels", "value"]}),
        ("This episode", {"fields": ["episode", "fire_count", "started_at", "last_fired_at", "acknowledged_at",
                                     "acknowledged_by", "resolved_at", "resolved_by", "silenced_by", "route"]}),
        ("Schedule", {"classes": ["collapse"], "fields": ["group_key", "notify_at", "escalate_at", "escalation_step",
                                                          "remind_at", "updated_at"]}),
    ]  # fmt: skip
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]
    Media = AlertsMedia

    # Acting on an alert (the actions and the page's buttons) needs change_alert.
    def has_act_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("alerts.change_alert")

    def has_silence_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("alerts.add_silence")

    @admin.display(description="severity", ordering="severity")
    def severity_badge(self, alert: Alert) -> str:
        return badge("severity", alert.severity)

    @admin.display(description="state", ordering="state")
    def state_badge(self, alert: Alert) -> str:
        return badge("state", alert.state)

    @admin.display(description="source/key", ordering="source")
    def fingerprint(self, alert: Alert) -> str:
        return alert.fingerprint

    @admin.display(description="silenced", boolean=True)
    def silenced(self, alert: Alert) -> bool:
        return alert.silenced_by_id is not None

    # ------------------------------------------------------------ bulk actions

    @admin.action(description="Acknowledge the selected alerts", permissions=["act"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet) -> None:
        done = [services.alert_acknowledge(alert, actor=request.user) for alert in queryset.order_by("pk")]
        self.message_user(request, tally(sum(done), "acknowledged", len(done) - sum(done), "not firing"))

    @admin.action(description="Resolve the selected alerts", permissions=["act"])
    def resolve(self, request: HttpRequest, queryset: QuerySet) -> None:
        open_alerts = [alert for alert in queryset.order_by("pk") if alert.is_open]
        for alert in open_alerts:
            services.alert_resolve(source=alert.source, key=alert.key, actor=request.user)
        skipped = queryset.count() - len(open_alerts)
        self.message_user(request, tally(len(open_alerts), "resolved", skipped, "already resolved"))

    @admin.action(description="Silence the selected alerts for 1 hour", permissions=["silence"])
    def silence_1h(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._silence(request, queryset, timedelta(hours=1), "Silenced for 1 hour from the alert list.")

    @admin.action(description="Silence the selected alerts for 4 hours", permissions=["silence"])
    def silence_4h(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._silence(request, queryset, timedelta(hours=4), "Silenced for 4 hours from the alert list.")

    @admin.action(description="Silence the selected alerts for…", permissions=["silence"])
    def silence_for(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        """An intermediate page asks for how long and why; its form posts back to this action."""
        form = SilenceForForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            self._silence(request, queryset, form.cleaned_data["duration"], form.cleaned_data["comment"])
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Silence alerts",
            "opts": self.model._meta,
            "form": form,
            "alerts": queryset.order_by("pk"),
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/alerts/alert/silence_for.html", context)

    def _silence(self, request: HttpRequest, queryset: QuerySet, duration: timedelta, comment: str) -> None:
        now = timezone.now()
        fingerprints = sorted(set(queryset.values_list("source", "key")))
        for source, key in fingerprints:  # one by one: each marks the alerts it covers as silenced at once
            Silence.objects.create(
                matchers=[exact_matcher("source", source), exact_matcher("key", key)],
                starts_at=now,
                ends_at=now + duration,
                comment=comment,
                created_by=request.user,
            )
        until = timezone.localtime(now + duration)
        self.message_user(
            request,
            f"{plural(len(fingerprints), 'alert')} silenced until {until:%Y-%m-%d %H:%M}; "
            "they notify nobody until then.",
        )

    # ------------------------------------------------------------ the alert's page

    def get_urls(self) -> list:
        act = self.admin_site.admin_view(self.act_view)
        return [path("<path:object_id>/act/", act, name="alerts_alert_act"), *super().get_urls()]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> Any:
        alert = self.get_object(request, object_id)
        extra = {**(extra_context or {}), "can_act": self.has_act_permission(request)}
        if alert is not None:
            extra.update(
                timeline=_timeline(alert),
                deliveries=_deliveries(alert),
                notification_link=request.user.has_perm("alerts.view_notification"),
            )
        return super().change_view(request, object_id, form_url, extra)

    def act_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Acknowledge, unacknowledge or resolve from the alert's page, with an optional comment."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_act_permission(request):
            raise PermissionDenied
        alert = get_object_or_404(self.get_queryset(request), pk=object_id)
        verb, comment = request.POST.get("do", ""), request.POST.get("comment", "").strip()[:5000]
        if verb == "acknowledge":
            done = services.alert_acknowledge(alert, actor=request.user, comment=comment)
        elif verb == "unacknowledge":
            done = services.alert_unacknowledge(alert, actor=request.user, comment=comment)
        elif verb == "resolve":
            done = alert.is_open
            services.alert_resolve(source=alert.source, key=alert.key, actor=request.user, comment=comment)
        else:
            return HttpResponseBadRequest("do must be acknowledge, unacknowledge or resolve")
        alert.refresh_from_db(fields=["state"])
        if done:
            self.message_user(request, f"{alert.fingerprint}: {verb}d.")
        else:
            self.message_user(request, f"{alert.fingerprint} is {alert.state}: nothing to {verb}.", messages.WARNING)
        return redirect("admin:alerts_alert_change", alert.pk)


def _timeline(alert: Alert) -> list[Transition]:
    """The latest transitions, oldest first, each with its details as (name, text) lines."""
    rows = list(alert.transitions.order_by("-at", "-id")[:TIMELINE_ROWS])
    for row in rows:
        row.detail_lines = [(name, _text(value)) for name, value in (row.details or {}).items()]
    return rows[::-1]


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{name}={item}" for name, item in value.items()) or "—"
    return str(value)


def _deliveries(alert: Alert) -> list[Notification]:
    rows = alert.notifications.select_related("channel").prefetch_related("attempt_log")
    return list(rows.order_by("-created_at", "-id")[:DELIVERY_ROWS])


# ---------------------------------------------------------------- the outbox


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ["at", "worker", "status_code", "delivered", "duration_ms", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "kind", "channel", "status_badge", "attempts", "last_status", "delivered_at", "title"]
    list_filter = ["status", "kind", "channel"]
    search_fields = ["=key"]
    list_select_related = ["channel"]
    paginator = CappedCountPaginator  # the outbox grows with every notification: never COUNT(*) all of it
    show_full_result_count = False
    list_per_page = 100
    date_hierarchy = "created_at"
    fields = ["key", "channel", "kind", "status", "alert_links", "attempts", "last_status", "last_error",
              "created_at", "next_attempt_at", "delivered_at", "give_up_at", "lease_owner", "lease_expires_at",
              "payload_json"]  # fmt: skip
    readonly_fields = fields
    inlines = [DeliveryAttemptInline]
    actions = ["replay"]
    Media = AlertsMedia

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("alerts.change_notification")

    @admin.display(description="status", ordering="status")
    def status_badge(self, notification: Notification) -> str:
        return badge("delivery", notification.status)

    @admin.display(description="title")
    def title(self, notification: Notification) -> str:
        return str((notification.payload or {}).get("title", ""))[:120]

    @admin.display(description="alerts")
    def alert_links(self, notification: Notification) -> str:
        alerts = notification.alerts.all()[:50]
        links = ((reverse("admin:alerts_alert_change", args=[alert.pk]), alert) for alert in alerts)
        return format_html_join(mark_safe("<br>"), '<a href="{}">{}</a>', links) or "—"

    @admin.display(description="payload")
    def payload_json(self, notification: Notification) -> str:
        return format_html("<pre>{}</pre>", json.dumps(notification.payload, indent=2, ensure_ascii=False))

    @admin.action(description="Replay the selected dead notifications (same idempotency key)", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet) -> None:
        replayed = [delivery.replay(notification, actor=request.user) for notification in queryset.order_by("pk")]
        self.message_user(request, tally(sum(replayed), "sent again", len(replayed) - sum(replayed), "not dead"))
