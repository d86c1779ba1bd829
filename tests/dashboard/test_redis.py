"""Redis losing its state without the hub's connection breaking (a quick restart, a flush): found within a
second by the marker the hub keeps there, and every socket resynced."""

import time
import uuid

import pytest
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async

from apps.dashboard import hub
from tests.conftest import REDIS_URL
from tests.dashboard.conftest import next_frame, open_socket, publish, session_cookie, subscribed

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


async def test_a_redis_that_lost_its_state_is_found_and_every_socket_resynced_within_2_s(superuser):
    socket = await open_socket(await sync_to_async(session_cookie)(superuser))
    await subscribed(socket, "metrics")
    the_hub = hub._hub

    client = aioredis.Redis.from_url(REDIS_URL)
    await client.delete(hub.MARKER.format(channel=the_hub.channel))  # as a restart without persistence does
    await client.aclose()
    lost = time.monotonic()

    snapshot = await next_frame(socket, type="snapshot")
    assert time.monotonic() - lost <= 2
    tag = uuid.uuid4().hex
    await publish("metrics", "sample", {"at": 1, "values": {}, "tag": tag})
    frame = await next_frame(socket, tag=tag)
    assert frame["seq"] > snapshot["seq"]
    await socket.disconnect()
