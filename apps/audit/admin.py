"""The audit trail in the admin: read-only, filterable, searchable, fast at a million events."""

import ipaddress
from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from apps.audit import registry
from apps.audit.models import AuditEvent


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows: a page of a million events never waits for COUNT(*) over all of them."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list.order_by()[: self.CAP + 1].count()


class CachedValuesFilter(admin.SimpleListFilter):
    """A filter listing a column's distinct values, looked up at most once a minute."""

    field = ""

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        key = f"opsportal:audit:filter:{self.field}"
        values = cache.get(key)
        if values is None:
            rows = AuditEvent.objects.order_by(self.field).values_list(self.field, flat=True).distinct()[:500]
            values = [value for value in rows if value]
            cache.set(key, values, 60)
        return [(value, value) for value in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(**{self.field: self.value()}) if self.value() else queryset


class ActionFilter(CachedValuesFilter):
    title = parameter_name = "action"
    field = "action"


class ResourceTypeFilter(CachedValuesFilter):
    title = "resource type"
    parameter_name = field = "resource_type"


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["timestamp", "action", "outcome", "actor_username", "resource", "ip", "short_request_id", "seq"]
    list_filter = [ActionFilter, "outcome", ResourceTypeFilter]
    search_fields = ["=actor_username", "=ip", "=resource_id", "resource_repr", "=request_id"]
    date_hierarchy = "timestamp"
    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 100
    fields = ["timestamp", "action", "outcome", "actor_username", "actor_id", "resource_type", "resource_id",
              "resource_repr", "changes_table", "details", "ip", "user_agent", "request_id", "seq", "prev_hash",
              "hash"]  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        # PostgreSQL's inet column cannot be compared with text that is not an address.
        if _is_ip(request.GET.get("q", "").strip()):
            return self.search_fields
        return [field for field in self.search_fields if field != "=ip"]

    @admin.display(description="resource")
    def resource(self, event: AuditEvent) -> str:
        if not event.resource_type:
            return "—"
        return f"{event.resource_type} #{event.resource_id} {event.resource_repr}".strip()

    @admin.display(description="request")
    def short_request_id(self, event: AuditEvent) -> str:
        return event.request_id[:8]

    @admin.display(description="changes")
    def changes_table(self, event: AuditEvent) -> str:
        if not event.changes:
            return "—"
        rows = format_html_join(
            "", "<tr><th>{}</th><td>{}</td><td>{}</td></tr>", ((f, *_pair(v)) for f, v in sorted(event.changes.items()))
        )
        return format_html('<table class="audit-diff"><thead><tr><th>field</th><th>before</th><th>after</th>'
                           "</tr></thead><tbody>{}</tbody></table>", rows)  # fmt: skip


def _pair(value: Any) -> tuple[str, str]:
    before, after = value if isinstance(value, list) and len(value) == 2 else (None, value)
    return ("—" if before is None else str(before)), ("—" if after is None else str(after))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class AuditHistoryMixin:
    """Adds an "Audit history" link to the change page of an audited model."""

    change_form_template = "admin/audit/change_form_with_history.html"

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> Any:
        label = self.model._meta.label_lower
        query = urlencode({"resource_type": label, "resource_id": object_id})
        history = f"{reverse('admin:audit_auditevent_changelist')}?{query}"
        extra = {**(extra_context or {}), "audit_history_url": history if registry.by_label(label) else None}
        return super().change_view(request, object_id, form_url, extra)


class AuditedUserAdmin(AuditHistoryMixin, UserAdmin):
    pass


class AuditedGroupAdmin(AuditHistoryMixin, GroupAdmin):
    pass


admin.site.unregister(User)
admin.site.register(User, AuditedUserAdmin)
admin.site.unregister(Group)
admin.site.register(Group, AuditedGroupAdmin)
