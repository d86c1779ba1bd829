"""Dashboard sockets through channels' WebsocketCommunicator against the real ASGI application."""

import time
from collections.abc import AsyncIterator
from typing import Any

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
    """Subscribe; return the snapshots by topic (live frames of a topic already snapshotted may come between)."""
    await communicator.send_json_to({"type": "subscribe", "topics": list(topics)})
    answer = await communicator.receive_json_from()
    assert answer["type"] == "subscribed", answer
    snapshots = {}
    while len(snapshots) < len(answer["topics"]):
        frame = await next_frame(communicator, type="snapshot")
        snapshots[frame["topic"]] = frame
    return snapshots


async def next_frame(communicator: WebsocketCommunicator, timeout: float = 5, **fields: Any) -> dict:
    """The next frame with these fields, "tag" meaning data["tag"]: with channels-redis, the tests of other
    processes publish on the same topics, and their frames are skipped."""
    tag = fields.pop("tag", None)
    deadline = time.monotonic() + timeout
    while True:
        frame = await communicator.receive_json_from(timeout=max(0.01, deadline - time.monotonic()))
        if all(frame.get(k) == v for k, v in fields.items()) and (tag is None or frame["data"].get("tag") == tag):
            return frame


async def frames_within(communicator: WebsocketCommunicator, seconds: float) -> list[dict]:
    """Every frame that arrives within the next seconds."""
    frames = []
    while not await communicator.receive_nothing(seconds):
        frames.append(await communicator.receive_json_from())
    return frames


async def publish(topic: str, type: str, data: dict) -> None:
    await sync_to_async(broadcast_on_commit)(topic, type, data)


@pytest.fixture(autouse=True)
async def fresh_hub() -> AsyncIterator[None]:
    """Each test's event loop gets its own hub; stopped at the end so that no task outlives the loop."""
    yield
    if hub._hub is not None:
        await hub._hub.stop()
        hub._hub = None
