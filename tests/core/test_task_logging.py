"""Task log lines: one line per event, in a process that is both a web process and a worker (runportal)."""

import time

import pytest

from apps.audit.tasks import audit_seal_task


@pytest.mark.django_db(transaction=True)
def test_a_task_queued_where_a_worker_runs_is_logged_once(celery_worker, log_lines):
    result = audit_seal_task.delay()
    result.get(timeout=30)

    def events() -> list[str]:
        return [line["event"] for line in log_lines() if result.id in (line.get("task_id"), line.get("child_task_id"))]

    deadline = time.monotonic() + 10
    while "task_succeeded" not in events() and time.monotonic() < deadline:  # logged just after the result
        time.sleep(0.05)
    events = events()

    assert events.count("task_enqueued") == 1
    assert events.count("task_succeeded") == 1
