from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from apps.health import services

RUN_CLAIM_KEY = "opsportal:health:run"


@shared_task(ignore_result=True, soft_time_limit=120, time_limit=180)
def health_run_task() -> dict:
    """Every HEALTH_INTERVAL_SECONDS: run the due checks, store them, alert; prune old history.

    A run claims its slot first (for half an interval, in the cache every process
    shares with Redis), so a task delivered twice, or queued again while one runs,
    checks once.
    """
    if not cache.add(RUN_CLAIM_KEY, 1, timeout=max(settings.HEALTH_INTERVAL_SECONDS // 2, 1)):
        return {"skipped": "another run started less than half an interval ago"}
    results = services.run_and_store()
    pruned = services.prune()
    return {"checks": len(results), "overall": str(services.overall(r.status for r in results)), "pruned": pruned}
