"""Read-only admin of the series and their raw samples (big tables: no full counts, nothing editable).

Registered from MetricsConfig.ready(); the rules' admin lives in admin.py.
"""

from datetime import datetime

from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from apps.core.readonly import ReadOnlyAdminMixin
from apps.metrics.models import Sample, Series


@admin.register(Series)
class SeriesAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["name", "unit", "last_value", "age", "samples_link"]
    search_fields = ["name"]
    show_full_result_count = False
    list_per_page = 200

    @admin.display(description="age", ordering="last_at")
    def age(self, series: Series) -> str:
        return describe_age(series.last_at, timezone.now())

    @admin.display(description="samples")
    def samples_link(self, series: Series) -> str:
        url = reverse("admin:metrics_sample_changelist") + f"?series__id__exact={series.pk}"
        return format_html('<a href="{}">samples</a>', url)


@admin.register(Sample)
class SampleAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["at", "series", "value"]
    list_select_related = ["series"]
    show_full_result_count = False
    # No date hierarchy nor filters that count: a day of 1-second samples is millions of rows.
    ordering = ["-at"]
    list_per_page = 200


def describe_age(at: datetime | None, now: datetime) -> str:
    """ "3 s ago", "5 min ago", "2 h ago", "never"."""
    if at is None:
        return "never"
    seconds = max((now - at).total_seconds(), 0)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.0f} h ago"
