"""Subscribe, snapshot, live frames in seq order, resync, unsubscribe: the protocol in embedded mode."""

import pytest

from tests.dashboard.conftest import open_socket, publish, session_cookie, subscribed

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_subscriber_gets_a_snapshot_then_frames_numbered_after_it(superuser):
    socket = await open_socket(await sync(session_cookie)(superuser))

    snapshots = await subscribed(socket, "metrics", "health")

    assert set(snapshots) == {"metrics", "health"}
    assert snapshots["metrics"]["data"] == {"at": None, "values": {}}
    base = snapshots["metrics"]["seq"]
    for n in range(3):
        await publish("metrics", "sample", {"at": n, "values": {"system.cpu.percent": n}})
    frames = [await socket.receive_json_from() for _ in range(3)]
    assert [(f["topic"], f["type"], f["seq"], f["data"]["at"]) for f in frames] == [
        ("metrics", "sample", base + 1 + n, n) for n in range(3)
    ]
    assert all(isinstance(f["ts"], float) for f in frames)
    await socket.disconnect()


def sync(function):
    from asgiref.sync import sync_to_async

    return sync_to_async(function)
