import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from apps.core import broadcast
from tests.threads import in_threads


def subscribe(topic: str) -> str:
    layer = get_channel_layer()
    name = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(broadcast.group_name(topic), name)
    return name


def receive_payloads(name: str, count: int) -> tuple[list[dict], int]:
    """The first `count` payloads sent to the channel, and in how many frames they came (one event loop)."""

    async def receive() -> tuple[list[dict], int]:
        layer, payloads, frames = get_channel_layer(), [], 0
        while len(payloads) < count:
            payloads += (await layer.receive(name))["payloads"]
            frames += 1
        return payloads, frames

    return async_to_sync(receive)()


@pytest.mark.django_db(transaction=True)
def test_a_broadcast_waits_for_the_commit_and_a_rollback_sends_nothing():
    topic = f"test-{uuid.uuid4().hex}"
    name = subscribe(topic)

    with pytest.raises(RuntimeError), transaction.atomic():
        broadcast.broadcast_on_commit(topic, {"n": "rolled back"})
        raise RuntimeError
    with transaction.atomic():
        broadcast.broadcast_on_commit(topic, {"n": "committed"})

    payloads, _ = receive_payloads(name, 1)
    assert payloads == [{"n": "committed"}]


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_burst_through_redis_arrives_whole_in_order_and_in_fewer_frames():
    topic = f"test-{uuid.uuid4().hex}"
    name = subscribe(topic)

    errors = in_threads(3, 200, lambda thread, n: broadcast.broadcast_on_commit(topic, {"thread": thread, "n": n}))

    assert errors == []
    payloads, frames = receive_payloads(name, 600)
    for thread in range(3):
        assert [p["n"] for p in payloads if p["thread"] == thread] == list(range(200))
    assert frames < 600
