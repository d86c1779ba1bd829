"""Receivers at framework seams: the request log line, and the request context carried into Celery tasks."""

import time
from dataclasses import replace
from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun
from django.dispatch import receiver
from django.http import HttpRequest
from django_structlog.signals import bind_extra_request_finished_metadata

from apps.core import context

HEADER = "opsportal_context"
_tokens: dict[str, Any] = {}


@before_task_publish.connect
def _attach_context(headers: dict | None = None, **kwargs: Any) -> None:
    if headers is not None:
        headers[HEADER] = context.current().as_headers()


@task_prerun.connect
def _restore_context(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    data = getattr(task.request, HEADER, None) if task is not None else None
    queued_by = context.RequestContext.from_headers(data)
    _tokens[task_id] = context.activate(replace(queued_by, channel="task"))


@task_postrun.connect
def _clear_context(task_id: str | None = None, **kwargs: Any) -> None:
    token = _tokens.pop(task_id, None)
    if token is not None:
        context.deactivate(token)


@receiver(bind_extra_request_finished_metadata)
def _add_duration(request: HttpRequest, log_kwargs: dict, **kwargs: Any) -> None:
    started = getattr(request, "started_at", None)
    if started is not None:
        log_kwargs["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
