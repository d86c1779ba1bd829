"""The metric rule's admin form: what the evaluation cannot use is refused on save, with one error per field.

The evaluation never crashes on a bad rule (a summary that does not render
falls back to a plain one), but the mistake should be seen when it is typed.
"""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from apps.alerts.matchers import LABEL_NAME
from apps.metrics.models import MetricRule
from apps.metrics.rule_summary import summary_error

RESERVED_LABELS = {"series"}  # set from the rule's series on every alert


class MetricRuleForm(forms.ModelForm):
    class Meta:
        model = MetricRule
        fields = [
            "name", "enabled", "severity", "series", "aggregation", "window_seconds", "comparison", "threshold",
            "for_seconds", "summary", "labels",
        ]  # fmt: skip

    def clean_summary(self) -> str:
        summary = self.cleaned_data["summary"]
        problem = summary_error(summary)
        if problem:
            raise ValidationError(problem, code="summary")
        return summary

    def clean_labels(self) -> dict[str, Any]:
        labels = self.cleaned_data["labels"]
        if labels in (None, ""):
            return {}
        if not isinstance(labels, dict):
            raise ValidationError('Labels are a JSON object: {"team": "web"}.', code="labels")
        for name, value in labels.items():
            if not LABEL_NAME.fullmatch(name):
                raise ValidationError(
                    f"Label name {name!r} must start with a letter or _ and hold letters, digits, _ . : -",
                    code="labels",
                )
            if name in RESERVED_LABELS:
                raise ValidationError(f"Label {name!r} is set by the rule itself.", code="labels")
            if isinstance(value, dict | list) or value is None:
                raise ValidationError(f"Label {name!r} needs a plain value (text or number).", code="labels")
        return labels

    def clean_series(self) -> str:
        series = self.cleaned_data["series"].strip()
        if not series:
            raise ValidationError("Name the series, e.g. system.cpu.percent.", code="series")
        return series
