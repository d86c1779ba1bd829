"""The scheduled evaluation of metric alert rules (Celery beat, every ALERTS_EVAL_INTERVAL_SECONDS)."""

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from apps.metrics.rules import rules_evaluate

CLAIM_KEY = "opsportal:metrics:rules"


@shared_task(ignore_result=True, soft_time_limit=60, time_limit=90)
def metrics_rules_task() -> dict:
    """Evaluate every enabled metric rule once.

    A tick claims its slot first (for half an interval, in the cache every
    process shares with Redis), so a task delivered twice, or queued again while
    one runs, evaluates once: two ticks at once would both see a rule enter its
    `for` and double its alert's fire count.
    """
    if not cache.add(CLAIM_KEY, 1, timeout=max(settings.ALERTS_EVAL_INTERVAL_SECONDS // 2, 1)):
        return {"skipped": "another evaluation started less than half an interval ago"}
    return rules_evaluate()
