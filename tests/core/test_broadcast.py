import contextlib
import uuid

import pytest
from django.db import transaction

from apps.core import broadcast
from tests.broadcasts import listen
from tests.threads import in_threads


@pytest.mark.django_db(transaction=True)
def test_a_broadcast_waits_for_the_commit_and_a_rollback_sends_nothing():
    topic = f"test-{uuid.uuid4().hex}"

    def act() -> None:
        with contextlib.suppress(RuntimeError), transaction.atomic():
            broadcast.broadcast_on_commit(topic, "test", {"n": "rolled back"})
            raise RuntimeError
        with transaction.atomic():
            broadcast.broadcast_on_commit(topic, "test", {"n": "committed"})

    payloads, _ = listen(topic, act)

    assert [(p["topic"], p["type"], p["data"]) for p in payloads] == [(topic, "test", {"n": "committed"})]


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_burst_through_redis_arrives_whole_in_order_and_in_fewer_frames():
    topic = f"test-{uuid.uuid4().hex}"
    errors = []

    def burst() -> None:
        payload = lambda thread, n: broadcast.broadcast_on_commit(topic, "test", {"thread": thread, "n": n})  # noqa: E731
        errors.extend(in_threads(3, 200, payload))

    payloads, frames = listen(topic, burst, 600)

    assert errors == []
    for thread in range(3):
        assert [p["data"]["n"] for p in payloads if p["data"]["thread"] == thread] == list(range(200))
    assert frames < 600
