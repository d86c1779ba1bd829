"""Dashboard sockets through channels' WebsocketCommunicator against the real ASGI application."""

from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.test import Client

from apps.core.broadcast import broadcast_on_commit
from apps.dashboard import hub
from opsportal.asgi import application

ORIGIN = (b"origin", b"http://localhost")


def session_cookie(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


async def open_socket(cookie: tuple[bytes, bytes]) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, "/ws/dashboard/", headers=[ORIGIN, cookie])
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def subscribed(communicator: WebsocketCommunicator, *topics: str) -> dict[str, dict]:
    """Subscribe; return the snapshots by topic (after the "subscribed" answer)."""
    await communicator.send_json_to({"type": "subscribe", "topics": list(topics)})
    answer = await communicator.receive_json_from()
    assert answer["type"] == "subscribed", answer
    snapshots = {}
    for _ in answer["topics"]:
        frame = await communicator.receive_json_from(timeout=5)
        assert frame["type"] == "snapshot", frame
        snapshots[frame["topic"]] = frame
    return snapshots


async def publish(topic: str, type: str, data: dict) -> None:
    await sync_to_async(broadcast_on_commit)(topic, type, data)


@pytest.fixture(autouse=True)
async def fresh_hub() -> AsyncIterator[None]:
    """Each test's event loop gets its own hub; stopped at the end so that no task outlives the loop."""
    yield
    if hub._hub is not None:
        await hub._hub.stop()
        hub._hub = None
