"""The hooks' scheduler tick: late heartbeats every HOOKS_TICK_SECONDS, and now and then the prunes."""

from collections.abc import Callable
from datetime import timedelta

import structlog
from celery import shared_task
from django.core.cache import cache

from apps.hooks import alertmanager, events, heartbeats

logger = structlog.get_logger(__name__)

# Each inbound hook keeps its own records bounded: its module's prune() is listed here (name: function
# returning how many rows went). They run at most once per PRUNE_EVERY_SECONDS across the deployment.
PRUNES: dict[str, Callable[[], int]] = {
    "heartbeat_pings": heartbeats.prune,
    "alertmanager_deliveries": alertmanager.prune,
    # Stored events are the endpoint's history in the admin: a month of it.
    "webhook_messages": lambda: events.prune(older_than=timedelta(days=30)),
}
PRUNE_EVERY_SECONDS = 600


@shared_task(ignore_result=True, soft_time_limit=60, time_limit=90)
def hooks_tick() -> dict:
    """Every HOOKS_TICK_SECONDS: mark late heartbeats and fire their alerts; prune when it is time."""
    late = heartbeats.check_due()
    pruned = {}
    # cache.add succeeds for one tick per period (the cache is shared in production): the others skip it.
    if cache.add("hooks:prune", 1, PRUNE_EVERY_SECONDS):
        pruned = {name: prune() for name, prune in PRUNES.items()}
    if late or any(pruned.values()):
        logger.info("hooks_tick", late=late, pruned=pruned)
    return {"late": late, "pruned": pruned}
