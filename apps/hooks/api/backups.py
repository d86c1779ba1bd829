"""/api/v1/backups/: the backups (list with filters, detail), "run now" for a policy, and verify.

Both writes take the admin's paths. "Run now" queues the task the admin's
button and the schedule queue (backup_run_task, trigger manual): a backup can
take hours, and the task is what takes the policy's lease, writes the record,
audits and broadcasts it. The answer is 202 with where to find the run: the
first backup of the policy with an id above `newer_than` (ids are handed out
when a run starts, and one run of a policy at a time holds its lease). Verify
is synchronous, as the admin's action: it re-reads every artifact of the
backup and answers the verdict, which services.verify records and alerts on.
"""

from datetime import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError
from ninja import Field, Path, Query, Router, Schema
from ninja import Status as Answer

from apps.backups import services, tasks
from apps.backups.errors import BackupError
from apps.backups.models import Backup, BackupPolicy, Status, Trigger, Verification
from apps.hooks.api.auth import require
from apps.hooks.api.inputs import schema_enum
from apps.hooks.api.pages import MAX_KEY, Page, PageQuery, page
from apps.hooks.api.problems import ERRORS, ApiError, Problem

router = Router(tags=["backups"])
VIEW_PERMISSION = "backups.view_backup"
RUN_PERMISSION = "backups.change_backuppolicy"  # the admin's "operate" permission: run, verify a sample, drill
VERIFY_PERMISSION = "backups.change_backup"  # the admin's verify action
FIELDS = ("id", "status", "trigger", "storage", "location", "started_at", "finished_at", "duration", "size_bytes",
          "encrypted", "verification", "verified_at", "error", "verify_error", "pruned_at")  # fmt: skip
WITH = {"policy_name": F("policy__name"), "created_by_name": F("created_by__username")}
RETRY_SECONDS = "30"
BackupStatus = schema_enum("BackupStatus", Status)


class BackupOut(Schema):
    id: int
    policy: str
    status: BackupStatus
    trigger: Trigger
    created_by: str | None = Field(description="Who ran it by hand; null for the schedule.")
    storage: str
    location: str
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    size_bytes: int
    encrypted: bool
    verification: Verification
    verified_at: datetime | None
    error: str
    verify_error: str
    pruned_at: datetime | None = Field(description="When its stored files were deleted (the record stays).")


class BackupArtifactOut(Schema):
    name: str
    kind: str = ""
    size: int = Field(0, description="Bytes stored (compressed, encrypted when the policy encrypts).")
    raw_size: int = 0
    sha256: str = ""


class BackupDetail(BackupOut):
    manifest_sha256: str
    artifacts: list[BackupArtifactOut]


class BackupFilters(PageQuery):
    policy: str | None = Field(None, max_length=64, description="The policy's name.")
    status: BackupStatus | None = None
    trigger: Trigger | None = None
    newer_than: int | None = Field(None, ge=0, le=MAX_KEY, description="Only backups with a higher id.")


class BackupRunQueued(Schema):
    policy: str
    queued_at: datetime
    newer_than: int = Field(description="The highest backup id when the run was queued.")
    poll: str = Field(description="GET it: the policy's backups newer than that; the run's is the first to appear.")


class BackupVerifyOut(Schema):
    ok: bool
    checked: list[str] = Field(description="The storage keys re-read.")
    errors: list[str]
    backup: BackupDetail


def _filtered(filters: BackupFilters) -> QuerySet:
    rows = Backup.objects.all()
    if filters.policy is not None:
        rows = rows.filter(policy__name=filters.policy)
    if filters.status is not None:
        rows = rows.filter(status=filters.status)
    if filters.trigger is not None:
        rows = rows.filter(trigger=filters.trigger)
    if filters.newer_than is not None:
        rows = rows.filter(pk__gt=filters.newer_than)
    return rows


def _row(values: dict[str, Any]) -> dict[str, Any]:
    duration = values.pop("duration")
    values["duration_seconds"] = duration.total_seconds() if duration is not None else None
    values["policy"], values["created_by"] = values.pop("policy_name"), values.pop("created_by_name")
    return values


def _detail(backup: Backup) -> dict[str, Any]:
    values = {name: getattr(backup, name) for name in FIELDS}
    values.update(policy_name=backup.policy.name, created_by_name=getattr(backup.created_by, "username", None))
    artifacts = [artifact for artifact in (backup.manifest or {}).get("artifacts", []) if isinstance(artifact, dict)]
    return {**_row(values), "manifest_sha256": backup.manifest_sha256, "artifacts": artifacts}


def _backup(backup_id: int) -> Backup:
    return get_object_or_404(Backup.objects.select_related("policy", "created_by"), pk=backup_id)


@router.get("/", response={200: Page[BackupOut], **ERRORS}, summary="List backups, newest first")
def list_backups(request: HttpRequest, filters: Query[BackupFilters]) -> dict[str, Any]:
    require(request, VIEW_PERMISSION)
    return page(_filtered(filters).values(*FIELDS, **WITH), filters, row=_row)


@router.get("/{backup_id}/", response={200: BackupDetail, **ERRORS, 404: Problem}, summary="One backup")
def get_backup(request: HttpRequest, backup_id: int = Path(..., ge=1, le=MAX_KEY)) -> dict[str, Any]:
    require(request, VIEW_PERMISSION)
    return _detail(_backup(backup_id))


@router.post(
    "/policies/{name}/run/",
    response={202: BackupRunQueued, **ERRORS, 404: Problem, 409: Problem, 503: Problem},
    summary="Start a backup of the policy (queued, as the admin's Run now)",
)
def run_policy(request: HttpRequest, name: str, response: HttpResponse) -> Answer:
    """409 while a run of the policy holds its lease (the queued task would be skipped); 503 if the queue is down."""
    require(request, RUN_PERMISSION)
    policy = get_object_or_404(BackupPolicy, name=name)
    now = timezone.now()
    if policy.lock_token and policy.lock_expires_at is not None and policy.lock_expires_at > now:
        running = Backup.objects.filter(policy=policy, status=Status.RUNNING).values_list("pk", flat=True)
        raise ApiError(HTTPStatus.CONFLICT, f"A backup of policy {name} is running (backup {running.first()}).")
    newer_than = Backup.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    try:
        tasks.backup_run_task.delay(policy.pk, Trigger.MANUAL.value, request.user.pk)
    except OperationalError:  # the broker is down: say so, rather than a 500 or a run that never comes
        unreachable = "The task queue cannot be reached; try again."
        raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, unreachable, headers={"Retry-After": RETRY_SECONDS}) from None
    poll = f"{reverse('api-v1:list_backups')}?{urlencode({'policy': name, 'newer_than': newer_than})}"
    response["Location"] = poll
    return Answer(HTTPStatus.ACCEPTED, {"policy": name, "queued_at": now, "newer_than": newer_than, "poll": poll})


@router.post(
    "/{backup_id}/verify/",
    response={200: BackupVerifyOut, **ERRORS, 404: Problem, 409: Problem},
    summary="Re-read every artifact of the backup and record the verdict (as the admin's Verify)",
)
def verify_backup(request: HttpRequest, backup_id: int = Path(..., ge=1, le=MAX_KEY)) -> dict[str, Any]:
    """Synchronous: takes as long as reading the backup back from its storage. 409 when it has no stored files."""
    require(request, VERIFY_PERMISSION)
    backup = _backup(backup_id)
    if backup.status != Status.SUCCEEDED or backup.pruned_at is not None:
        state = "its files were deleted" if backup.pruned_at else f"it is {backup.status}"
        raise ApiError(HTTPStatus.CONFLICT, f"Backup {backup.pk} has no stored files to verify: {state}.")
    try:
        result = services.verify(backup, actor=request.user)
    except BackupError as error:  # its files went meanwhile (a prune)
        raise ApiError(HTTPStatus.CONFLICT, str(error)) from None
    return {"ok": result.ok, "checked": result.checked, "errors": result.errors, "backup": _detail(backup)}
