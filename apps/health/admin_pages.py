"""The checks in the admin: the overview (a tile per check) and each check's history, both read-only.

Registered on import by apps/health/admin.py. The overview is the check
states' list: one query over one row per check, whatever the history's size.
The history is the results' list, filtered by check: newest first from the
(name, -checked_at) index, counted up to 10,000 rows, never in full.
"""

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils.html import format_html

from apps.audit.admin import CappedCountPaginator
from apps.core.readonly import ReadOnlyAdminMixin
from apps.health import pages
from apps.health.models import CheckResult, CheckState


class HealthMedia:
    css = {"all": ["opsportal/health.css"]}


def status_badge(status: str) -> str:
    return format_html('<span class="health-badge health-{}">{}</span>', status, status)


@admin.register(CheckState)
class CheckStateAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Its list is the overview page; a state's own page shows its details."""

    fields = ["name", "status", "message", "details", "latency_ms", "checked_at", "since", "bad_since", "alerted"]
    readonly_fields = fields
    Media = HealthMedia

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            fresh = pages.wants_fresh(request)
        except pages.BadFreshError as error:
            return HttpResponseBadRequest(str(error))
        return pages.overview_page(request, pages.report(fresh=fresh))


class CheckNameFilter(admin.SimpleListFilter):
    """The checks by name, from their latest states: one small query, never a DISTINCT over the history."""

    title = "check"
    parameter_name = "name"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        names = list(CheckState.objects.order_by("name").values_list("name", flat=True))
        if self.value() and self.value() not in names:
            names.append(self.value())  # a check that no longer runs still has its history
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(name=self.value()) if self.value() else queryset


@admin.register(CheckResult)
class CheckResultAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["checked_at", "name", "status_label", "message", "latency"]
    list_display_links = ["checked_at"]
    list_filter = [CheckNameFilter, "status"]
    sortable_by = ["checked_at"]  # any other order would sort the whole table
    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 100
    fields = ["name", "status", "message", "latency_ms", "checked_at", "details"]
    readonly_fields = fields
    Media = HealthMedia

    @admin.display(description="status")
    def status_label(self, result: CheckResult) -> str:
        return status_badge(result.status)

    @admin.display(description="latency")
    def latency(self, result: CheckResult) -> str:
        return f"{result.latency_ms:.1f} ms"
