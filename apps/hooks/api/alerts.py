"""/api/v1/alerts/: list (filters: state, severity, source, label), detail with timeline, fire, acknowledge, resolve.

Reads need alerts.view_alert. Acknowledging and resolving need alerts.change_alert,
as the admin's actions and buttons do; firing (a producer's act, which the admin
does not offer) needs alerts.add_alert. Every write is a call of the alert
services, as from the admin: audited there (acknowledge, resolve) and broadcast
after the commit.
"""

from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any

from django.db.models import QuerySet, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema, Status
from pydantic import BaseModel

from apps.alerts import revision, services
from apps.alerts.matchers import LABEL_NAME
from apps.alerts.models import Alert, Severity, State, Transition
from apps.hooks.api import reuse
from apps.hooks.api.auth import require
from apps.hooks.api.pages import Page, PageQuery, page
from apps.hooks.api.problems import ERRORS, ONE_ERRORS, Problem, bad_request, conflict, get_or_404

router = Router(tags=["alerts"])
ACT_ERRORS = {**ONE_ERRORS, 409: Problem, 413: Problem}
TIMELINE_ROWS = 200  # as the admin's alert page: the latest lines of a flapping alert, not all of them
MAX_LABEL_FILTERS = 20  # each is a condition on the JSON column; more would only make a slow query
NOT_BLANK = r"\S"

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


class TransitionOut(Schema):
    kind: Transition.Kind
    episode: int
    at: datetime
    actor_name: str = Field(description="Who did it; empty for the engine itself.")
    comment: str
    details: dict[str, Any]


class AlertDetail(AlertOut):
    description: str
    acknowledged_by: str | None = Field(description="Username of who acknowledged this episode.")
    resolved_by: str | None = Field(description="Username of who resolved it by hand; null when its producer did.")
    silenced_by: int | None = Field(description="Id of the silence that covers this episode.")
    timeline: list[TransitionOut] = Field(description=f"The latest {TIMELINE_ROWS} lines, oldest first.")


class AlertFilters(PageQuery):
    state: State | None = None
    severity: Severity | None = None
    source: str | None = Field(None, max_length=100)
    label: list[Annotated[str, Field(pattern=f"^{LABEL_NAME.pattern}=")]] = Field(
        [], max_length=MAX_LABEL_FILTERS, description="name=value; repeat for several (all must match)."
    )


class FireIn(Schema):
    # The lengths of the Alert's columns; not blank, since the service strips spaces.
    source: str = Field(
        min_length=1, max_length=100, pattern=NOT_BLANK, description="Who raises it, e.g. ci, backup-script."
    )
    key: str = Field(
        min_length=1, max_length=200, pattern=NOT_BLANK, description="What it is about, unique within the source."
    )
    severity: Severity
    summary: str = Field(min_length=1, max_length=500, pattern=NOT_BLANK, description="One line: what is wrong.")
    description: str = Field("", max_length=10_000)
    labels: dict[str, str] = Field(
        {},
        max_length=services.MAX_LABELS,
        json_schema_extra={"propertyNames": {"pattern": f"^{LABEL_NAME.pattern}$"}},  # the service checks them
        description="For routing, grouping and silences.",
    )
    value: Any = Field(None, description="The observed value (any JSON).")


class ActIn(Schema):
    comment: str = Field("", max_length=5000, description="For the alert's timeline.")


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


def _detail(alert_id: int) -> dict[str, Any]:
    alert = get_or_404(Alert.objects.select_related("acknowledged_by", "resolved_by"), alert_id)
    lines = alert.transitions.order_by("-at", "-id").values(*TransitionOut.model_fields)[:TIMELINE_ROWS]
    return {
        **_row({name: getattr(alert, name) for name in LIST_FIELDS}),
        "description": alert.description,
        "acknowledged_by": alert.acknowledged_by.get_username() if alert.acknowledged_by else None,
        "resolved_by": alert.resolved_by.get_username() if alert.resolved_by else None,
        "silenced_by": alert.silenced_by_id,
        "timeline": list(lines)[::-1],
    }


@router.get("/", response={200: Page[AlertOut], **ERRORS}, summary="List alerts, newest first")
def list_alerts(request: HttpRequest, filters: Query[AlertFilters]) -> HttpResponse:
    require(request, "alerts.view_alert")
    return reuse.page(
        request,
        f"alerts:{filters.model_dump_json()}",
        revision.EPOCH,
        Page[AlertOut],
        lambda: page(_filtered(filters).values(*LIST_FIELDS), filters, row=_row),
    )


@router.post(
    "/",
    response={200: AlertDetail, 201: AlertDetail, **ERRORS, 413: Problem},
    summary="Fire an alert",
    description="Raises the alert (source, key): 201 when this begins an episode, 200 when it updates an open one "
    "(no new notification). Needs alerts.add_alert.",
)
def fire_alert(request: HttpRequest, payload: FireIn) -> Status:
    require(request, "alerts.add_alert")
    try:
        alert = services.alert_fire(**payload.model_dump())
    except services.AlertError as exc:
        raise bad_request(exc.field or "body", str(exc)) from None
    return Status(HTTPStatus.CREATED if alert.fire_count == 1 else HTTPStatus.OK, _detail(alert.pk))


@router.get("/{int:alert_id}/", response={200: AlertDetail, **ONE_ERRORS}, summary="An alert with its timeline")
def get_alert(request: HttpRequest, alert_id: int) -> dict[str, Any]:
    require(request, "alerts.view_alert")
    return _detail(alert_id)


@router.post(
    "/{int:alert_id}/acknowledge/",
    response={200: AlertDetail, **ACT_ERRORS},
    summary="Acknowledge a firing alert",
    description="Escalation and reminders stop. 409 when the alert is not firing. Needs alerts.change_alert.",
)
def acknowledge_alert(request: HttpRequest, alert_id: int, payload: ActIn | None = None) -> dict[str, Any]:
    require(request, "alerts.change_alert")
    alert = get_or_404(Alert.objects.all(), alert_id)
    comment = payload.comment if payload else ""
    if not services.alert_acknowledge(alert, actor=request.user, comment=comment):
        alert.refresh_from_db(fields=["state"])
        raise conflict(f"The alert is {alert.state}: only a firing alert can be acknowledged.")
    return _detail(alert.pk)


@router.post(
    "/{int:alert_id}/resolve/",
    response={200: AlertDetail, **ACT_ERRORS},
    summary="Resolve an alert",
    description="Everyone who was told of it is told it is resolved. 409 when it already is. "
    "Needs alerts.change_alert.",
)
def resolve_alert(request: HttpRequest, alert_id: int, payload: ActIn | None = None) -> dict[str, Any]:
    require(request, "alerts.change_alert")
    alert = get_or_404(Alert.objects.all(), alert_id)
    if not alert.is_open:
        raise conflict("The alert is already resolved.")
    comment = payload.comment if payload else ""
    services.alert_resolve(source=alert.source, key=alert.key, actor=request.user, comment=comment)
    return _detail(alert.pk)
