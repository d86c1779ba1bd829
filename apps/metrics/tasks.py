from celery import shared_task

from apps.metrics import services


@shared_task(ignore_result=True, soft_time_limit=30, time_limit=60)
def metrics_collect_task() -> dict:
    """Every MONITORING_INTERVAL_SECONDS: collect a tick, store it, broadcast it.

    The tick is claimed first (a conditional UPDATE of one row in the database
    every process shares), so a task delivered twice, or two beats at once,
    collect once per half interval.
    """
    if not services.claim_tick():
        return {"skipped": "another collector claimed this tick"}
    collected = services.collect_and_store()
    return {"series": len(collected.values), "ms": round(collected.values["metrics.collect.ms"], 1)}


@shared_task(ignore_result=True, soft_time_limit=1800, time_limit=1900)
def metrics_prune_task() -> dict:
    """Hourly: delete samples and rollups past METRICS_*_RETENTION_* (in batches, each its own transaction)."""
    return services.prune()
