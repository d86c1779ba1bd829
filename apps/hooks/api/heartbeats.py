"""/api/v1/heartbeats/: list, create, get, change (PATCH) and delete dead-man's switches.

Writes go through apps.hooks.heartbeats (validated, audited), as in the admin.
Each heartbeat carries its ping URLs, absolute on the host the request came to.
"""

from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, Query, Router, Schema, Status
from pydantic import BeforeValidator, StrictBool, StrictStr

from apps.alerts.models import Severity
from apps.hooks import heartbeats
from apps.hooks.api.auth import require
from apps.hooks.api.inputs import schema_enum
from apps.hooks.api.pages import Page, PageQuery, page
from apps.hooks.api.problems import ERRORS, ONE_ERRORS, ApiError, Problem, conflict, invalid
from apps.hooks.models import Heartbeat
from apps.hooks.views.heartbeat import ping_urls

router = Router(tags=["heartbeats"])
HeartbeatStatus = schema_enum("HeartbeatStatus", Heartbeat.Status)


class PingUrls(Schema):
    success: str = Field(description="GET, HEAD or POST here when the job succeeded.")
    start: str = Field(description="When the job starts (optional; enables the run-time limit).")
    fail: str = Field(description="When the job failed: the alert fires at once.")


class HeartbeatOut(Schema):
    id: int
    uuid: UUID
    name: str
    description: str
    enabled: bool
    period_seconds: int | None
    cron: str
    timezone: str
    grace_seconds: int
    max_runtime_seconds: int | None
    severity: str
    status: HeartbeatStatus
    last_ping_at: datetime | None
    last_start_at: datetime | None
    deadline: datetime | None = Field(description="When silence makes it late (null: waiting for its first ping).")
    created_at: datetime
    ping_urls: PingUrls


def _whole(value: Any) -> Any:
    """A JSON number (60 or 60.0); not true/false nor "60", which lax parsing would take for numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Input should be a whole number")
    return value


Seconds = Annotated[int, Field(ge=0, le=heartbeats.MAX_SECONDS), BeforeValidator(_whole)]
PositiveSeconds = Annotated[int, Field(ge=1, le=heartbeats.MAX_SECONDS), BeforeValidator(_whole)]
Name = Annotated[StrictStr, Field(min_length=1, max_length=100)]
Description = Annotated[StrictStr, Field(max_length=10_000)]
Cron = Annotated[StrictStr, Field(max_length=100, description="Five fields, e.g. '0 3 * * *'; or period_seconds.")]
TimeZone = Annotated[StrictStr, Field(max_length=64, description="The cron's time zone, e.g. 'Europe/Paris'.")]


class HeartbeatIn(Schema):
    name: Name
    description: Description = ""
    enabled: StrictBool = True
    period_seconds: PositiveSeconds | None = Field(None, description="Set this or `cron`.")
    cron: Cron = ""
    timezone: TimeZone = "UTC"
    grace_seconds: Seconds = 300
    max_runtime_seconds: PositiveSeconds | None = Field(None, description="After /start; null: no limit.")
    severity: Severity = Severity.ERROR


class HeartbeatPatch(Schema):
    """Only the fields sent change; to switch from a period to a cron expression, send period_seconds: null."""

    # None here only means "not sent": an explicit null is refused where the field cannot be empty.
    name: Name = None
    description: Description = None
    enabled: StrictBool = None
    period_seconds: PositiveSeconds | None = None
    cron: Cron = None
    timezone: TimeZone = None
    grace_seconds: Seconds = None
    max_runtime_seconds: PositiveSeconds | None = None
    severity: Severity = None


class HeartbeatFilters(PageQuery):
    status: HeartbeatStatus | None = None
    enabled: bool | None = None


def _refused(error: ValidationError) -> ApiError:
    """A 409 when the one fault is a name another heartbeat has (a conflict with what exists), else a 400."""
    faults = getattr(error, "error_dict", {})
    if list(faults) == ["name"] and [fault.code for fault in faults["name"]] == ["unique"]:
        return conflict(error.messages[0])
    return invalid(error)


def _out(request: HttpRequest, heartbeat: Heartbeat) -> dict[str, Any]:
    values = {name: getattr(heartbeat, name) for name in HeartbeatOut.model_fields if name != "ping_urls"}
    return {**values, "ping_urls": ping_urls(request, heartbeat)}


@router.get("/", response={200: Page[HeartbeatOut], **ERRORS}, summary="List heartbeats, oldest first")
def list_heartbeats(request: HttpRequest, filters: Query[HeartbeatFilters]) -> dict[str, Any]:
    require(request, "hooks.view_heartbeat")
    rows = Heartbeat.objects.all()
    if filters.status is not None:
        rows = rows.filter(status=filters.status)
    if filters.enabled is not None:
        rows = rows.filter(enabled=filters.enabled)
    return page(rows, filters, newest_first=False, row=lambda heartbeat: _out(request, heartbeat))


@router.post(
    "/",
    response={201: HeartbeatOut, **ERRORS, 409: Problem, 413: Problem},
    summary="Create a heartbeat",
    description="409 when another heartbeat has the name.",
)
def create_heartbeat(request: HttpRequest, payload: HeartbeatIn) -> Status:
    require(request, "hooks.add_heartbeat")
    try:
        heartbeat = heartbeats.heartbeat_create(actor=request.user, **payload.model_dump())
    except ValidationError as error:
        raise _refused(error) from None
    return Status(HTTPStatus.CREATED, _out(request, heartbeat))


@router.get("/{heartbeat_id}/", response={200: HeartbeatOut, **ONE_ERRORS}, summary="One heartbeat")
def get_heartbeat(request: HttpRequest, heartbeat_id: int) -> dict[str, Any]:
    require(request, "hooks.view_heartbeat")
    return _out(request, get_object_or_404(Heartbeat, pk=heartbeat_id))


@router.patch(
    "/{heartbeat_id}/",
    response={200: HeartbeatOut, **ONE_ERRORS, 409: Problem, 413: Problem},
    summary="Change a heartbeat",
    description="409 when another heartbeat has the new name.",
)
def change_heartbeat(request: HttpRequest, heartbeat_id: int, payload: HeartbeatPatch) -> dict[str, Any]:
    require(request, "hooks.change_heartbeat")
    heartbeat = get_object_or_404(Heartbeat, pk=heartbeat_id)
    try:
        heartbeat = heartbeats.heartbeat_update(heartbeat, **payload.model_dump(exclude_unset=True))
    except ValidationError as error:
        raise _refused(error) from None
    return _out(request, heartbeat)


@router.delete("/{heartbeat_id}/", response={204: None, **ONE_ERRORS}, summary="Delete a heartbeat and its pings")
def delete_heartbeat(request: HttpRequest, heartbeat_id: int) -> Status:
    require(request, "hooks.delete_heartbeat")
    heartbeats.heartbeat_delete(get_object_or_404(Heartbeat, pk=heartbeat_id))
    return Status(HTTPStatus.NO_CONTENT, None)
