"""The audit trail in the admin: read-only, filterable, searchable, fast at a million events."""

import ipaddress
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from apps.audit import export, registry
from apps.audit.models import AuditEvent
from apps.audit.services import record, valid_ip
from apps.core.readonly import ReadOnlyAdminMixin


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


class ActorFilter(CachedValuesFilter):
    title = "actor"
    parameter_name = "actor"
    field = "actor_username"


class ResourceTypeFilter(CachedValuesFilter):
    title = "resource type"
    parameter_name = field = "resource_type"


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["timestamp", "action", "outcome", "actor_username", "resource", "ip", "short_request_id", "seq"]
    list_filter = [ActionFilter, "outcome", ActorFilter, ResourceTypeFilter]
    search_fields = ["=actor_username", "=resource_id", "resource_repr", "=request_id"]
    search_help_text = "An IP address, a username, a request id, a resource id, or words of a resource's name."
    date_hierarchy = "timestamp"
    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 100
    fields = ["timestamp", "action", "outcome", "actor_username", "actor_id", "resource_type", "resource_id",
              "resource_repr", "changes_table", "details", "ip", "user_agent", "request_id", "seq", "prev_hash",
              "hash"]  # fmt: skip
    readonly_fields = fields

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        """An address is looked up in its own index; anything else in the other fields."""
        address = valid_ip(search_term.strip())
        if address:
            return queryset.filter(ip=address), False
        return super().get_search_results(request, queryset, search_term)

    def get_urls(self) -> list:
        export_view = self.admin_site.admin_view(self.export_view)
        return [path("export/<str:fmt>/", export_view, name="audit_auditevent_export"), *super().get_urls()]

    def export_view(self, request: HttpRequest, fmt: str) -> StreamingHttpResponse:
        """The list as filtered on screen, streamed as CSV or JSON Lines; the export itself is recorded."""
        if fmt not in export.FORMATS:
            raise Http404(f"no export format {fmt!r}")
        if not self.has_view_permission(request):
            raise PermissionDenied
        events = self.get_changelist_instance(request).get_queryset(request)
        record("audit.export", details={"format": fmt, "filters": dict(request.GET.items()), "via": "admin"})
        response = StreamingHttpResponse(
            _stream(request, export.lines(events, fmt)),
            content_type="text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson",
        )
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{fmt}"'
        return response

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


def _stream(request: HttpRequest, lines: Iterator[str]) -> Iterator[str] | AsyncIterator[str]:
    """Under ASGI, an async iterator pulling chunks from the database in the request's thread, so the
    export streams in constant memory instead of being collected first; under WSGI, the lines as they are."""
    if not isinstance(request, ASGIRequest):
        return lines

    def chunk() -> str:
        return "".join(itertools.islice(lines, 500))

    async def chunks() -> AsyncIterator[str]:
        while text := await sync_to_async(chunk)():
            yield text

    return chunks()


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
