"""/api/v1/health/: every check's latest result, one check's history, and "run now".

The latest results and the history are what the scheduled run (health_run_task)
stored. "Run now" does what the admin's run-now does (the overview's ?fresh=1
and the targets' "check now" action): the checks run in the request,
concurrently, each bounded by its timeout, and their results are answered, not
stored. Only the scheduled run writes history and fires or resolves alerts, so
an operator poking at a check from a script never opens or closes an alert.
"""

from datetime import datetime
from typing import Annotated, Any

from django.http import Http404, HttpRequest
from ninja import Field, Query, Router, Schema

from apps.health import services
from apps.health.checks import Status
from apps.health.checks.base import NAME_MAX_LENGTH
from apps.health.models import CheckState
from apps.hooks.api.auth import require
from apps.hooks.api.inputs import schema_enum
from apps.hooks.api.problems import ERRORS, Problem, bad_request

router = Router(tags=["health"])
VIEW_PERMISSION = "health.view_checkstate"  # as /health/ and the admin's overview (with ?fresh=1, which runs them)
HISTORY_PERMISSION = "health.view_checkresult"  # as the admin's history list
MAX_TIMEOUT = 60.0  # seconds: a request waits for the slowest check; the `health` command allows more
CheckStatus = schema_enum("CheckStatus", Status)


class CheckOut(Schema):
    name: str
    status: CheckStatus
    message: str = Field(description="One line: what the check found.")
    details: dict[str, Any]
    latency_ms: float = Field(description="How long the check took.")
    checked_at: datetime = Field(description="When the check started.")


class CheckStateOut(CheckOut):
    since: datetime = Field(description="When the current status began.")
    alerted: bool = Field(description="An alert is open for this check.")


class HealthOut(Schema):
    status: CheckStatus = Field(description="The worst status of all checks; unknown when none has run.")
    checks: list[CheckStateOut]


class CheckHistoryQuery(Schema):
    limit: int = Field(100, ge=1, le=1000, description="How many results, newest first.")


class CheckHistoryOut(Schema):
    name: str
    items: list[CheckOut]


class HealthRunIn(Schema):
    checks: list[Annotated[str, Field(min_length=1, max_length=NAME_MAX_LENGTH)]] | None = Field(
        None, min_length=1, max_length=500, description="Names of the checks to run; omit for every check."
    )
    timeout: float | None = Field(
        None, gt=0, le=MAX_TIMEOUT, description="Seconds each check may take, instead of its own timeout."
    )


class HealthRunOut(Schema):
    status: CheckStatus = Field(description="The worst status of the checks that ran.")
    checks: list[CheckOut]


@router.get("/", response={200: HealthOut, **ERRORS}, summary="Every check's latest stored result")
def latest(request: HttpRequest) -> dict[str, Any]:
    require(request, VIEW_PERMISSION)
    states = services.latest()
    return {"status": services.overall(state.status for state in states), "checks": states}


@router.get(
    "/{path:name}/history/",
    response={200: CheckHistoryOut, **ERRORS, 404: Problem},
    summary="One check's stored results, newest first",
)
def history(request: HttpRequest, name: str, query: Query[CheckHistoryQuery]) -> dict[str, Any]:
    require(request, HISTORY_PERMISSION)
    items = services.history(name, limit=query.limit)
    if not items and not _known(name):
        raise Http404(name)
    return {"name": name, "items": items}


@router.post(
    "/run/", response={200: HealthRunOut, **ERRORS, 413: Problem}, summary="Run checks now; answer, store nothing"
)
def run(request: HttpRequest, payload: HealthRunIn | None = None) -> dict[str, Any]:
    """Synchronous: answers within the longest timeout of the checks asked for (`timeout` bounds each)."""
    require(request, VIEW_PERMISSION)
    payload = payload or HealthRunIn()
    try:
        results = services.run_checks(payload.checks, timeout=payload.timeout)
    except services.UnknownCheckError as error:
        raise bad_request("checks", str(error)) from None
    return {"status": services.overall(result.status for result in results), "checks": results}


def _known(name: str) -> bool:
    """A check that exists now, or one that no longer runs but left a state (its history is served above)."""
    if len(name) > NAME_MAX_LENGTH:
        return False
    return name in services.check_names() or CheckState.objects.filter(name=name).exists()
