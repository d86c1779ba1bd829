"""Metric alert rules in the admin: edited with validation, listed with their evaluation state.

Saving, disabling, renaming or deleting a rule is audited (AppConfig.ready())
and resolves an alert the rule no longer stands behind at once, not at the next
tick.
"""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from apps.audit.admin import AuditHistoryMixin
from apps.metrics.models import MetricRule
from apps.metrics.rule_forms import MetricRuleForm
from apps.metrics.rule_summary import duration
from apps.metrics.rules import rule_evaluate, rule_retired


@admin.register(MetricRule)
class MetricRuleAdmin(AuditHistoryMixin, admin.ModelAdmin):
    form = MetricRuleForm
    list_display = ["name", "enabled", "condition", "held_for", "severity", "state", "last_value", "last_evaluated_at"]
    list_filter = ["state", "enabled", "severity", "aggregation"]
    search_fields = ["name", "series", "summary"]
    actions = ["evaluate_now"]
    readonly_fields = ["state", "pending_since", "last_value", "last_evaluated_at", "created_at"]
    fieldsets = [
        (None, {"fields": ["name", "enabled", "severity"]}),
        (
            "Condition",
            {"fields": ["series", "aggregation", "window_seconds", "comparison", "threshold", "for_seconds"]},
        ),
        ("Alert", {"fields": ["summary", "labels"]}),
        ("Evaluation", {"fields": readonly_fields}),
    ]

    @admin.display(description="condition")
    def condition(self, rule: MetricRule) -> str:
        if rule.aggregation == MetricRule.Aggregation.ABSENT:
            return f"absent({rule.series}) {rule.comparison} {rule.threshold:g} s"
        window = duration(rule.window_seconds)
        return f"{rule.aggregation}({rule.series}[{window}]) {rule.comparison} {rule.threshold:g}"

    @admin.display(description="for", ordering="for_seconds")
    def held_for(self, rule: MetricRule) -> str:
        return duration(rule.for_seconds) if rule.for_seconds else "—"

    @admin.action(description="Evaluate the selected rules now")
    def evaluate_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        for rule in queryset:
            verdict = rule_evaluate(rule)
            value = "no data" if verdict.value is None else f"{verdict.value:g}"
            state = verdict.state if rule.enabled else "disabled"
            level = messages.WARNING if verdict.state == MetricRule.State.FIRING else messages.INFO
            self.message_user(request, f"{rule.name}: {state} ({value})", level)

    def save_model(self, request: HttpRequest, obj: MetricRule, form: ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and "name" in form.changed_data:
            rule_retired(form.initial["name"])  # its alert's key was the old name
        if not obj.enabled:
            rule_retired(obj.name)

    def delete_model(self, request: HttpRequest, obj: MetricRule) -> None:
        name = obj.name
        super().delete_model(request, obj)
        rule_retired(name)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        names = list(queryset.values_list("name", flat=True))
        super().delete_queryset(request, queryset)
        for name in names:
            rule_retired(name)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        # A new rule starts from a template that shows the fields it can use.
        initial = super().get_changeform_initial_data(request)
        return {"summary": "{series} at {value:.1f} (threshold {threshold:g}, over {window})", **initial}
