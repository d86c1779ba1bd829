"""/api/v1/silences/: list (filter: active now), create, get, change (PATCH), end now (expire), delete.

The admin's SilenceForm checks what comes in, so the API and the admin refuse
the same silences with the same messages; a silence is saved as the admin saves
it (the model's save: audited by the database trigger, and the post_save signal
marks the open alerts it covers as silenced at once).

Ending and deleting are two acts, as in the admin: POST .../expire/ ends a
silence now and keeps it (what the admin's "End the selected silences now"
action does; alerts' timelines point at it), and is what a client usually
wants; DELETE removes the row, as the admin's delete does. Permissions are the
admin's: alerts.view_silence to read, add_silence to create, change_silence to
change or end one, delete_silence to delete.
"""

from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Query, Router, Schema, Status

from apps.alerts import services, silences
from apps.alerts.forms import SilenceForm
from apps.alerts.matchers import LABEL_NAME
from apps.alerts.models import Silence
from apps.hooks.api.auth import require
from apps.hooks.api.inputs import Moment
from apps.hooks.api.pages import Page, PageQuery, page
from apps.hooks.api.problems import ERRORS, ONE_ERRORS, Problem, conflict, form_invalid, get_or_404

router = Router(tags=["silences"])
MATCHERS_HELP = (
    "All must match: name=value, name!=value, name=~regex or name!~regex (a regex matches the whole value); "
    "a name is source, key, severity or a label."
)
# What JSON Schema can say of a matcher: its name and operator (whether a regex compiles, the form says).
Matchers = Annotated[
    list[Annotated[str, Field(pattern=rf"^\s*{LABEL_NAME.pattern}\s*(=~|!~|!=|=)")]],
    Field(min_length=1, description=MATCHERS_HELP),
]
Comment = Annotated[str, Field(min_length=1, pattern=r"\S", description="Why (shown with the silence).")]


class SilenceOut(Schema):
    id: int
    matchers: list[str]
    starts_at: datetime
    ends_at: datetime
    repeat: Silence.Repeat = Field(description='"" (once), "daily" or "weekly": the window comes back.')
    repeat_until: datetime | None
    comment: str
    created_by: str | None = Field(description="Username of who made it.")
    created_at: datetime
    active: bool = Field(description="Its window contains now: matching alerts notify nobody.")


class SilenceIn(Schema):
    matchers: Matchers
    starts_at: Moment | None = Field(None, description="Default: now.")
    ends_at: Moment = Field(description="After starts_at; a repeating window is shorter than its period.")
    repeat: Silence.Repeat = Silence.Repeat.NONE
    repeat_until: Moment | None = Field(
        None, description="A repeating silence's last window starts before (after starts_at; only with a repeat)."
    )
    comment: Comment


class SilencePatch(Schema):
    """The fields to change; the others keep their values (and the result follows SilenceIn's rules)."""

    # None here only means "not sent": an explicit null is refused where the field cannot be empty.
    matchers: Matchers = None
    starts_at: Moment = None
    ends_at: Moment = None
    repeat: Silence.Repeat = None
    repeat_until: Moment | None = None
    comment: Comment = None


class SilenceFilters(PageQuery):
    active: bool | None = Field(None, description="true: only silences active now; false: only the others.")


def _out(silence: Silence, now: datetime) -> dict[str, Any]:
    return {
        **{name: getattr(silence, name) for name in ("id", "matchers", "starts_at", "ends_at", "repeat",
                                                     "repeat_until", "comment", "created_at")},
        "created_by": silence.created_by.get_username() if silence.created_by else None,
        "active": silences.window(silence, now) is not None,
    }  # fmt: skip


def _one(silence_id: int) -> Silence:
    return get_or_404(Silence.objects.select_related("created_by"), silence_id)


def _saved(form: SilenceForm, request: HttpRequest) -> dict[str, Any]:
    """Save as the admin does (in one transaction, the model's save), or 400 naming what the form refused."""
    if not form.is_valid():
        raise form_invalid(form)
    with transaction.atomic():
        silence = form.save(commit=False)
        if silence.pk is None:
            silence.created_by = request.user
        silence.save()
    return _out(_one(silence.pk), timezone.now())


@router.get("/", response={200: Page[SilenceOut], **ERRORS}, summary="List silences, newest first")
def list_silences(request: HttpRequest, filters: Query[SilenceFilters]) -> dict[str, Any]:
    require(request, "alerts.view_silence")
    now, rows = timezone.now(), Silence.objects.select_related("created_by")
    if filters.active is not None:
        active = [silence.pk for silence in silences.active(now)]
        rows = rows.filter(pk__in=active) if filters.active else rows.exclude(pk__in=active)
    return page(rows, filters, row=lambda silence: _out(silence, now))


@router.post("/", response={201: SilenceOut, **ERRORS, 413: Problem}, summary="Create a silence")
def create_silence(request: HttpRequest, payload: SilenceIn) -> Status:
    require(request, "alerts.add_silence")
    data = payload.model_dump()
    data["starts_at"] = data["starts_at"] or timezone.now()
    return Status(HTTPStatus.CREATED, _saved(SilenceForm(data=data), request))


@router.get("/{int:silence_id}/", response={200: SilenceOut, **ONE_ERRORS}, summary="A silence")
def get_silence(request: HttpRequest, silence_id: int) -> dict[str, Any]:
    require(request, "alerts.view_silence")
    return _out(_one(silence_id), timezone.now())


@router.patch("/{int:silence_id}/", response={200: SilenceOut, **ONE_ERRORS, 413: Problem}, summary="Change a silence")
def change_silence(request: HttpRequest, silence_id: int, payload: SilencePatch) -> dict[str, Any]:
    require(request, "alerts.change_silence")
    silence = _one(silence_id)
    data = {name: getattr(silence, name) for name in SilenceForm.Meta.fields}
    data.update(payload.model_dump(exclude_unset=True))
    return _saved(SilenceForm(data=data, instance=silence), request)


@router.post(
    "/{int:silence_id}/expire/",
    response={200: SilenceOut, **ONE_ERRORS, 409: Problem},
    summary="End a silence now",
    description="A one-off silence ends now (one not begun yet is cancelled); a repeating one stops repeating. "
    "The silence is kept. 409 when it is already over. Needs alerts.change_silence.",
)
def expire_silence(request: HttpRequest, silence_id: int) -> dict[str, Any]:
    require(request, "alerts.change_silence")
    silence = _one(silence_id)
    with transaction.atomic():
        ended = services.silence_expire(silence)
    if not ended:
        raise conflict("The silence is already over.")
    return _out(_one(silence_id), timezone.now())


@router.delete(
    "/{int:silence_id}/",
    response={204: None, **ONE_ERRORS},
    summary="Delete a silence",
    description="Removes it (alerts it silenced no longer point at it); to end a silence and keep it, "
    "POST .../expire/. Needs alerts.delete_silence.",
)
def delete_silence(request: HttpRequest, silence_id: int) -> Status:
    require(request, "alerts.delete_silence")
    silence = _one(silence_id)
    with transaction.atomic():
        silence.delete()
    return Status(HTTPStatus.NO_CONTENT, None)
