from celery import shared_task

from apps.health import services


@shared_task(ignore_result=True, soft_time_limit=120, time_limit=180)
def health_run_task() -> dict:
    """Every HEALTH_INTERVAL_SECONDS: run the due checks, store them, alert; prune old history."""
    results = services.run_and_store()
    pruned = services.prune()
    return {"checks": len(results), "overall": str(services.overall(r.status for r in results)), "pruned": pruned}
