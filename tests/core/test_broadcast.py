import contextlib
import time
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
    seqs = [p["seq"] for p in payloads]
    assert seqs == list(range(seqs[0], seqs[0] + 600)), "numbered one by one, in the order they arrive"


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_frames_that_could_not_be_numbered_leave_a_gap_in_seq(monkeypatch):
    topic = f"test-{uuid.uuid4().hex}"
    reserve, calls = broadcast._reserve, []

    async def unreachable_once(layer, topic, count):
        calls.append(count)
        if len(calls) == 1:
            raise ConnectionError("Redis is away")
        return await reserve(layer, topic, count)

    monkeypatch.setattr(broadcast, "_reserve", unreachable_once)

    def act() -> None:
        broadcast.broadcast_on_commit(topic, "test", {"n": "lost"})
        time.sleep(broadcast.WINDOW * 2)
        broadcast.broadcast_on_commit(topic, "test", {"n": "after"})

    (first,), _ = listen(topic, act)
    (second,), _ = listen(topic, lambda: broadcast.broadcast_on_commit(topic, "test", {"n": "next"}))

    assert calls[1:] == [2, 1], "the lost frame's number is skipped"
    assert first["data"] == {"n": "after"} and second["seq"] == first["seq"] + 1


@pytest.mark.django_db(transaction=True)
def test_a_frame_is_numbered_per_topic_and_stamped_with_its_publish_time():
    before = time.time()
    topic = f"test-{uuid.uuid4().hex}"

    payloads, _ = listen(topic, lambda: [broadcast.broadcast_on_commit(topic, "test", {"n": n}) for n in range(3)], 3)

    assert [p["seq"] for p in payloads] == [payloads[0]["seq"] + n for n in range(3)]
    assert all(before <= p["ts"] <= time.time() for p in payloads)
