"""Backup policies: edited by hand with validation (apps/backups/forms.py), run, verified and drilled on demand.

The buttons and actions only queue the tasks the scheduler queues (apps.backups.tasks): a
backup can take longer than a request may, and the task is what takes the run lock, writes
the record, audits it and broadcasts its progress (shown live on the page).
"""

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.urls import path
from django.utils.html import format_html

from apps.audit.admin import AuditHistoryMixin
from apps.backups import tasks
from apps.backups.admin.records import BackupsMedia, badge, plural
from apps.backups.forms import BackupPolicyForm
from apps.backups.models import Backup, BackupPolicy, Trigger

# What "run now", "verify" and "drill now" queue, and how the message names it.
OPERATIONS: dict[str, tuple[Callable[[int], Any], str]] = {
    "run": (lambda policy_id: tasks.backup_run_task.delay(policy_id, Trigger.MANUAL.value), "backup"),
    "verify": (lambda policy_id: tasks.backup_verify_task.delay(policy_id), "verify"),
    "drill": (lambda policy_id: tasks.backup_drill_task.delay(policy_id), "restore drill"),
}
BUTTONS = [("run", "Run now"), ("verify", "Verify"), ("drill", "Drill now")]


def queue(operation: str, policies: Iterable[BackupPolicy]) -> list[str]:
    """Queue the operation for each policy once the request's transaction commits; the policies' names."""
    send, _ = OPERATIONS[operation]
    names = []
    for policy in policies:
        transaction.on_commit(partial(send, policy.pk))
        names.append(policy.name)
    return names


def newest(field: str) -> Subquery:
    return Subquery(Backup.objects.filter(policy=OuterRef("pk")).order_by("-started_at").values(field)[:1])


@admin.register(BackupPolicy)
class BackupPolicyAdmin(AuditHistoryMixin, admin.ModelAdmin):
    change_form_template = "admin/backups/backuppolicy/change_form.html"
    form = BackupPolicyForm
    list_display = ["name", "enabled", "encryption", "schedule", "storage", "last_backup", "last_status",
                    "next_run_at"]  # fmt: skip
    list_filter = ["enabled", "storage"]
    search_fields = ["name"]
    actions = ["run_now", "verify_now", "drill_now"]
    readonly_fields = ["next_run_at", "next_verify_at", "next_drill_at", "lock_expires_at", "created_at",
                       "updated_at"]  # fmt: skip
    fieldsets = [
        (None, {"fields": ["name", "enabled"]}),
        ("What", {"fields": ["databases", "include_media", "paths"]}),
        ("When and how", {"fields": ["schedule", "compression_level", "recipients", "storage"]}),
        ("Retention (GFS: the newest backup of each of the last N hours, days...)",
         {"fields": ["keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"]}),
        ("Verify, drill, freshness", {"fields": ["verify_after", "verify_schedule", "verify_sample_percent",
                                                 "drill_schedule", "max_age"]}),
        ("Scheduler", {"classes": ["collapse"], "fields": readonly_fields}),
    ]  # fmt: skip
    Media = BackupsMedia

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(
                last_started=newest("started_at"), last_state=newest("status"), last_verification=newest("verification")
            )
        )

    # Running, verifying and drilling a policy need the right to change it.
    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("backups.change_backuppolicy")

    @admin.display(description="encryption", ordering="recipients")
    def encryption(self, policy: BackupPolicy) -> str:
        return badge("encryption", "on") if policy.encrypted else badge("encryption", "off", "OFF")

    @admin.display(description="last backup", ordering="last_started")
    def last_backup(self, policy: BackupPolicy) -> Any:
        return policy.last_started or "—"

    @admin.display(description="last status")
    def last_status(self, policy: BackupPolicy) -> str:
        if policy.last_state is None:
            return "—"
        verification = policy.last_verification if policy.last_state == "succeeded" else None
        return format_html("{} {}", badge("status", policy.last_state),
                           badge("verification", verification) if verification else "")  # fmt: skip

    # ------------------------------------------------------------ actions

    @admin.action(description="Run a backup of the selected policies now", permissions=["operate"])
    def run_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._queue(request, "run", queryset)

    @admin.action(description="Verify a sample of the selected policies' backups now", permissions=["operate"])
    def verify_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._queue(request, "verify", queryset)

    @admin.action(description="Run a restore drill of the selected policies now", permissions=["operate"])
    def drill_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._queue(request, "drill", queryset)

    def _queue(self, request: HttpRequest, operation: str, policies: Iterable[BackupPolicy]) -> None:
        names = queue(operation, policies)
        what = OPERATIONS[operation][1]
        self.message_user(request, f"Queued a {what} of {plural(len(names), 'policy', 'policies')} "
                                   f"({', '.join(names)}); its progress shows below.")  # fmt: skip

    # ------------------------------------------------------------ the policy's page

    def get_urls(self) -> list:
        operate = self.admin_site.admin_view(self.operate_view)
        return [path("<int:object_id>/operate/", operate, name="backups_backuppolicy_operate"), *super().get_urls()]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> Any:
        extra = {**(extra_context or {}), "can_operate": self.has_operate_permission(request), "operations": BUTTONS}
        return super().change_view(request, object_id, form_url, extra)

    def operate_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """The page's "Run now", "Verify" and "Drill now" buttons (POST do=run|verify|drill)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_operate_permission(request):
            raise PermissionDenied
        policy = get_object_or_404(BackupPolicy, pk=object_id)
        operation = request.POST.get("do", "")
        if operation in OPERATIONS:
            self._queue(request, operation, [policy])
        else:
            self.message_user(request, f"Unknown operation {operation[:32]!r}.", messages.ERROR)
        return redirect("admin:backups_backuppolicy_change", policy.pk)
