"""/api/v1/alerts/: list (filters: state, severity, source, label), detail with timeline, fire, acknowledge, resolve."""

from datetime import datetime
from typing import Annotated, Any

from django.db.models import QuerySet, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.http import HttpRequest
from ninja import Field, Query, Router
from pydantic import BaseModel

from apps.alerts.matchers import LABEL_NAME
from apps.alerts.models import Alert, Severity, State
from apps.hooks.api.pages import Page, PageQuery, page
from apps.hooks.api.problems import ERRORS

router = Router(tags=["alerts"])
MAX_LABEL_FILTERS = 20  # each is a condition on the JSON column; more would only make a slow query

LIST_FIELDS = ("id", "source", "key", "severity", "state", "summary", "labels", "value", "episode", "fire_count",
               "started_at", "last_fired_at", "acknowledged_at", "resolved_at", "silenced_by_id")  # fmt: skip


class AlertOut(BaseModel):
    id: int
    source: str
    key: str
    severity: Severity
    state: State
    summary: str
    labels: dict[str, str]
    value: Any = None
    episode: int
    fire_count: int
    started_at: datetime
    last_fired_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    silenced: bool


class AlertFilters(PageQuery):
    state: State | None = None
    severity: Severity | None = None
    source: str | None = Field(None, max_length=100)
    label: list[Annotated[str, Field(pattern=f"^{LABEL_NAME.pattern}=")]] = Field(
        [], max_length=MAX_LABEL_FILTERS, description="name=value; repeat for several (all must match)."
    )


def _filtered(filters: AlertFilters) -> QuerySet:
    rows = Alert.objects.all()
    if filters.state:
        rows = rows.filter(state=filters.state)
    if filters.severity:
        rows = rows.filter(severity=filters.severity)
    if filters.source:
        rows = rows.filter(source=filters.source)
    for number, text in enumerate(filters.label):
        name, _, value = text.partition("=")  # the pattern made sure of a label name, then "="
        # Cast: on SQLite a bare key transform compares its right-hand side as JSON.
        label = Cast(KeyTextTransform(name, "labels"), TextField())
        rows = rows.alias(**{f"label_{number}": label}).filter(**{f"label_{number}": value})
    return rows


def _row(values: dict[str, Any]) -> dict[str, Any]:
    values["silenced"] = values.pop("silenced_by_id") is not None
    return values


@router.get("/", response={200: Page[AlertOut], **ERRORS}, summary="List alerts, newest first")
def list_alerts(request: HttpRequest, filters: Query[AlertFilters]) -> dict[str, Any]:
    return page(_filtered(filters).values(*LIST_FIELDS), filters, row=_row)
