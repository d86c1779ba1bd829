"""The Celery application. Tasks live in each app's tasks.py; the same task
functions run in runportal's in-process worker and in `celery -A opsportal worker`."""

import os
from typing import Any

from celery import Celery
from celery.signals import after_task_publish, before_task_publish
from django_structlog.celery.steps import DjangoStructLogInitStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings")


class StructlogWorkerStep(DjangoStructLogInitStep):
    """django-structlog's receivers for the task's life in a worker, less its publishing ones.

    Its app config has connected those already (DJANGO_STRUCTLOG_CELERY_ENABLED, for the web processes): with
    both, every task queued from a worker (runportal's embedded one, a task queueing another) was logged twice.
    """

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        before_task_publish.disconnect(self.receiver.receiver_before_task_publish)
        after_task_publish.disconnect(self.receiver.receiver_after_task_publish)


app = Celery("opsportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.steps["worker"].add(StructlogWorkerStep)
