import os
import socket
import time

import structlog
from celery import shared_task
from django.core.cache import cache

from apps.core import context

logger = structlog.get_logger(__name__)

SCHEDULER_HEARTBEAT_KEY = "opsportal:scheduler:heartbeat"


@shared_task(ignore_result=False)
def ping() -> dict:
    """Answer which worker ran the task and under which request: a probe for workers and tests."""
    ctx = context.current()
    logger.info("ping", request_id=ctx.request_id)
    return {"host": socket.gethostname(), "pid": os.getpid(), "request_id": ctx.request_id, "user_id": ctx.user_id}


@shared_task
def scheduler_heartbeat() -> None:
    """Run by beat every 30 s; health checks read the time to tell a dead scheduler."""
    cache.set(SCHEDULER_HEARTBEAT_KEY, time.time(), timeout=None)
