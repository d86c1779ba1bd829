"""/api/v1/audit/events/: the audit trail, read-only: filters, one event, keyset pages in the chain's order.

Why pages follow `seq` (the event's place in the hash chain), not the id: ids
come from a sequence when a transaction inserts its event, and transactions
commit in any order, so an event with a lower id can become visible after one
with a higher id was read. A client following the trail oldest first with an
id cursor would skip it for good. The chain's sealer (apps.audit.chain.seal)
assigns seq to committed events only, one sealer at a time (a PostgreSQL
advisory lock held until its commit; SQLite has one writer), always above the
highest seq there is: so once a seq is visible, every lower one is already
committed and visible too (or pruned from the start of the chain). A cursor on
seq therefore never skips nor repeats an event, in either direction, however
many events are recorded meanwhile: newest first, every event sealed when the
first page was read appears exactly once; oldest first, passing the last seq
seen as `cursor` later returns exactly the events sealed since.

The list shows sealed events only. An event is sealed right after its
transaction commits (by a background thread, within milliseconds; the periodic
sweep seals what a killed process left), so the list lags the database by
that much. The detail (by id) shows an event before it is sealed too, with
`seq` null.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, Path, Query, Router, Schema
from pydantic import IPvAnyAddress, WithJsonSchema

from apps.audit.models import AuditEvent, Outcome
from apps.hooks.api.auth import require
from apps.hooks.api.inputs import Moment
from apps.hooks.api.pages import MAX_KEY, Page, PageQuery, page
from apps.hooks.api.problems import ERRORS, Problem

router = Router(tags=["audit"])
PERMISSION = "audit.view_auditevent"  # as the admin's audit trail
# Described with the standard formats (pydantic's own "ipvanyaddress" is one no client knows).
IP_SCHEMA = {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
IPAddress = Annotated[IPvAnyAddress, WithJsonSchema(IP_SCHEMA)]
FIELDS = ("id", "seq", "timestamp", "actor_id", "actor_username", "action", "outcome", "resource_type", "resource_id",
          "resource_repr", "changes", "details", "ip", "user_agent", "request_id")  # fmt: skip


class AuditEventOut(Schema):
    id: int
    seq: int | None = Field(description="Its place in the hash chain; null for the moments before it is sealed.")
    timestamp: datetime
    actor_id: int | None
    actor: str = Field(alias="actor_username", description="The username, kept when the user is deleted.")
    action: str
    outcome: Outcome
    resource_type: str = Field(description="app_label.model, e.g. backups.backuppolicy; empty for none.")
    resource_id: str
    resource_repr: str
    changes: dict[str, Any] = Field(description="field: [before, after]")
    details: dict[str, Any]
    ip: str | None
    user_agent: str
    request_id: str = Field(description="The X-Request-ID of the request (or of the request that queued the task).")


class AuditEventDetail(AuditEventOut):
    prev_hash: str = Field(description="The previous event's hash (empty until sealed).")
    hash: str = Field(description="SHA-256 over this event's content, seq and prev_hash (empty until sealed).")


class AuditFilters(PageQuery):
    actor: str | None = Field(None, max_length=150, description="The actor's username.")
    action: str | None = Field(None, max_length=64, description="e.g. backup.run, alerts.alert.update")
    outcome: Outcome | None = None
    resource_type: str | None = Field(None, max_length=100)
    resource_id: str | None = Field(None, max_length=64)
    request_id: str | None = Field(None, max_length=128)
    ip: IPAddress | None = Field(None, description="The client's IP address.")
    since: Moment | None = Field(None, description="Events at or after this time (ISO 8601 with a zone).")
    until: Moment | None = Field(None, description="Events before this time.")
    order: Literal["newest", "oldest"] = Field(
        "newest", description="oldest: in chain order; pass the last `seq` seen as `cursor` to get what came since."
    )


def _filtered(filters: AuditFilters) -> QuerySet:
    rows = AuditEvent.objects.filter(seq__isnull=False)
    exact = {"actor_username": filters.actor, "action": filters.action, "outcome": filters.outcome,
             "resource_type": filters.resource_type, "resource_id": filters.resource_id,
             "request_id": filters.request_id}  # fmt: skip
    rows = rows.filter(**{field: value for field, value in exact.items() if value is not None})
    if filters.ip is not None:
        rows = rows.filter(ip=str(filters.ip))  # canonical, as record() stores it
    if filters.since is not None:
        rows = rows.filter(timestamp__gte=filters.since)
    if filters.until is not None:
        rows = rows.filter(timestamp__lt=filters.until)
    return rows


@router.get("/events/", response={200: Page[AuditEventOut], **ERRORS}, summary="List audit events, newest first")
def list_events(request: HttpRequest, filters: Query[AuditFilters]) -> dict[str, Any]:
    require(request, PERMISSION)
    rows = _filtered(filters).values(*FIELDS)
    return page(rows, filters, newest_first=filters.order == "newest", key="seq")


@router.get("/events/{event_id}/", response={200: AuditEventDetail, **ERRORS, 404: Problem}, summary="One audit event")
def get_event(request: HttpRequest, event_id: int = Path(..., ge=1, le=MAX_KEY)) -> AuditEvent:
    require(request, PERMISSION)
    return get_object_or_404(AuditEvent, pk=event_id)
