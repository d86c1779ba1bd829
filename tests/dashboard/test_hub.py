"""The hub's own machinery: seq order across publishers, slow and stalled clients, bounded memory."""

import asyncio
import json

import pytest

from apps.core import broadcast
from apps.dashboard import access
from apps.dashboard import connection as connection_module
from apps.dashboard.connection import Connection
from apps.dashboard.hub import CLOSE_TOO_SLOW, REORDER_SECONDS, hub

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def everyone_allowed(monkeypatch):
    """These sockets have no real session or user: the access check lets them be."""
    monkeypatch.setattr(access, "current", lambda users, sessions: (dict.fromkeys(users, access.TOPICS), sessions))


class Transport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


class Client:
    """A server protocol whose client reads only when told to (send() waits, as uvicorn's does when paused)."""

    def __init__(self) -> None:
        self.transport = Transport()
        self.received: list[dict] = []
        self.reading = asyncio.Event()

    async def send(self, message: dict) -> None:
        await self.reading.wait()
        self.received.append(message)

    def frames(self) -> list[dict]:
        return [json.loads(m["text"]) for m in self.received if m["type"] == "websocket.send"]


def frame(seq: int) -> dict:
    return {"topic": "metrics", "type": "sample", "seq": seq, "ts": 0.0, "data": {}}


async def subscriber(client: Client, limit: int = 256) -> Connection:
    the_hub = hub()
    await the_hub.connected.wait()
    connection = the_hub.attach(client.send, user_id=1, session_key="k", allowed=frozenset({"metrics"}))
    connection.queue = type(connection.queue)(maxlen=limit)
    connection.topics.add("metrics")
    the_hub.subscribers["metrics"].add(connection)
    the_hub.last_seq["metrics"] = 10
    return connection


async def test_frames_that_arrive_out_of_order_are_delivered_in_seq_order():
    client = Client()
    client.reading.set()
    await subscriber(client)

    for seq in (12, 13, 11, 14):
        hub()._arrived("metrics", [frame(seq)])
    await asyncio.sleep(0.01)

    assert [f["seq"] for f in client.frames()] == [11, 12, 13, 14]


async def test_the_frames_of_one_message_go_out_in_seq_order_too():
    client = Client()
    client.reading.set()
    await subscriber(client)

    hub()._arrived("metrics", [frame(12), frame(11), frame(14), frame(13)])
    await asyncio.sleep(0.01)

    assert [f["seq"] for f in client.frames()] == [11, 12, 13, 14]


async def test_a_missing_frame_is_waited_for_briefly_then_skipped():
    client = Client()
    client.reading.set()
    await subscriber(client)

    hub()._arrived("metrics", [frame(13)])
    await asyncio.sleep(REORDER_SECONDS / 2)
    assert client.frames() == []
    await asyncio.sleep(REORDER_SECONDS)
    hub()._arrived("metrics", [frame(11)])  # too late: the clients were told of the gap (they resync)
    hub()._arrived("metrics", [frame(14)])
    await asyncio.sleep(0.01)

    assert [f["seq"] for f in client.frames()] == [13, 14]


async def test_a_slow_client_skips_to_the_newest_frames_and_the_drops_are_counted():
    slow, fast = Client(), Client()
    fast.reading.set()
    slow_connection = await subscriber(slow, limit=8)
    await subscriber(fast, limit=8)
    dropped_before = connection_module.stats.dropped

    for seq in range(11, 31):
        hub()._arrived("metrics", [frame(seq)])
        await asyncio.sleep(0)
    slow.reading.set()
    await asyncio.sleep(0.01)

    assert [f["seq"] for f in fast.frames()] == list(range(11, 31))
    assert [f["seq"] for f in slow.frames()] == [11, *range(23, 31)]  # one in flight, then the newest 8: a gap
    assert slow_connection.dropped == 11
    assert connection_module.stats.dropped - dropped_before == 11


async def test_a_stalled_client_is_closed_and_cut_off_and_the_others_go_on(settings):
    settings.DASHBOARD_STALL_SECONDS = 1
    stalled, fast = Client(), Client()
    fast.reading.set()
    stalled_connection = await subscriber(stalled, limit=4)
    await subscriber(fast)

    for seq in range(11, 1011):  # the stalled client's queue stays at its bound
        hub()._arrived("metrics", [frame(seq)])
        await asyncio.sleep(0)
    assert len(stalled_connection.queue) == 4
    for _ in range(60):  # past the stall limit, the next tick, and the close frame's wait (1 s)
        await asyncio.sleep(0.1)
        if stalled.transport.aborted:
            break

    assert stalled.transport.aborted, "the close frame could not be written: the socket was cut"
    assert stalled_connection not in hub().connections and stalled_connection.closed
    assert len(fast.frames()) == 1000


async def test_a_stalled_client_that_still_takes_the_close_frame_gets_4408(settings):
    settings.DASHBOARD_STALL_SECONDS = 1
    stalled = Client()
    connection = await subscriber(stalled, limit=4)
    hub()._arrived("metrics", [frame(11)])
    for _ in range(30):  # stalled past the limit: a tick starts closing it
        await asyncio.sleep(0.1)
        if connection.closed:
            break

    stalled.reading.set()  # the buffer drains in time for the close frame
    await asyncio.sleep(0.1)

    assert stalled.received[-1] == {"type": "websocket.close", "code": CLOSE_TOO_SLOW}
    assert not stalled.transport.aborted


async def test_a_message_that_cannot_be_delivered_is_logged_and_the_next_ones_still_are():
    client = Client()
    client.reading.set()
    await subscriber(client)
    the_hub = hub()
    await the_hub._join("metrics")
    the_hub.last_seq["metrics"] = 10
    layer, group = the_hub.layer, broadcast.group_name("metrics")

    bad = {**frame(11), "data": {"b": b"\x00"}}  # bytes: the layer carries them, JSON cannot
    await layer.group_send(group, {"type": "broadcast", "topic": "metrics", "frames": [bad]})
    await layer.group_send(group, {"type": "broadcast", "topic": "metrics", "frames": [frame(12)]})
    await asyncio.sleep(REORDER_SECONDS * 2)

    # Only this test's frames: on Redis the other test processes broadcast on "metrics" too.
    assert [f["seq"] for f in client.frames() if f["seq"] in (11, 12)] == [12]
