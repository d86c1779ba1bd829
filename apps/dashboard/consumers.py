"""The dashboard's WebSocket: staff only; subscribe to topics, get a snapshot, then live frames from the hub.

The protocol (frames, messages, close codes) is in README.md, "Live dashboards:
the WebSocket protocol". Frames reach the socket through the process's hub,
never through a channel-layer channel of the socket's own.
"""

from typing import Any

import orjson
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.dashboard import access
from apps.dashboard.connection import Connection
from apps.dashboard.hub import CLOSE_NOT_ALLOWED, CLOSE_NOT_LOGGED_IN, encode, hub

__all__ = ["CLOSE_NOT_ALLOWED", "CLOSE_NOT_LOGGED_IN", "DashboardConsumer"]

MAX_MESSAGE = 4096  # characters: the largest client message is a subscribe to every topic
MAX_ID = 128  # characters of a ping's id echoed back


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    channel_layer_alias = "opsportal.no-layer"  # not configured, so Channels gives the socket no layer channel

    connection: Connection | None = None  # this socket in the hub, once accepted

    async def connect(self) -> None:
        user = self.scope.get("user")
        # Accept first: a close code only reaches the browser after the handshake.
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_NOT_LOGGED_IN)
            return
        session_key = self.scope["session"].session_key or ""
        allowed, alive = await database_sync_to_async(access.current)({user.pk}, {session_key})
        if session_key not in alive:
            await self.close(code=CLOSE_NOT_LOGGED_IN)
        elif user.pk not in allowed:
            await self.close(code=CLOSE_NOT_ALLOWED)
        else:
            self.connection = hub().attach(
                self.scope.get("opsportal.send", self.base_send),
                user_id=user.pk,
                session_key=session_key,
                allowed=allowed[user.pk],
            )

    async def disconnect(self, code: int) -> None:
        if self.connection is not None:
            hub().detach(self.connection)
            self.connection = None

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        if self.connection is None:
            return  # closing: refused at connect, or closed by the hub
        if text_data is None:
            self.reply_error("binary frames are not accepted")
        elif len(text_data) > MAX_MESSAGE:
            self.reply_error(f"message too large (over {MAX_MESSAGE} characters)")
        else:
            try:
                content = orjson.loads(text_data)
            except orjson.JSONDecodeError:
                self.reply_error("not valid JSON")
                return
            await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if not isinstance(kind, str):
            self.reply_error("expected an object with a string 'type'")
        elif kind == "ping":
            ident = content.get("id")
            self.reply({"type": "pong", "id": ident if len(encode({"id": ident}).text) <= MAX_ID else None})
        elif kind in ("subscribe", "unsubscribe"):
            topics = self.topics(content.get("topics"))
            if topics is None:
                return
            if kind == "subscribe":
                await self.subscribe(topics)
            else:
                hub().unsubscribe(self.connection, topics)
                self.reply({"type": "subscribed", "topics": sorted(self.connection.topics), "denied": []})
        elif kind == "resync":
            topic = content.get("topic")
            if not isinstance(topic, str) or topic not in self.connection.topics:
                self.reply_error("resync needs a 'topic' this socket is subscribed to")
            else:
                hub().resync(self.connection, topic)
        else:
            self.reply_error(f"unknown message type {kind[:64]!r}")

    def topics(self, value: Any) -> set[str] | None:
        """The known topics named by a subscribe/unsubscribe message; None (after an error frame) if it is wrong."""
        if not isinstance(value, list) or not all(isinstance(topic, str) for topic in value):
            self.reply_error("'topics' must be a list of topic names")
            return None
        unknown = sorted({topic[:64] for topic in value} - access.TOPICS)
        if unknown:
            self.reply_error(f"unknown topics {unknown[:8]}; known: {sorted(access.TOPICS)}")
            return None
        return set(value)

    async def subscribe(self, topics: set[str]) -> None:
        granted = topics & self.connection.allowed
        self.reply({"type": "subscribed", "topics": sorted(self.connection.topics | granted),
                    "denied": sorted(topics - granted)})  # fmt: skip
        await hub().subscribe(self.connection, granted)

    def reply(self, frame: dict[str, Any]) -> None:
        """In the socket's queue, so that it keeps its place among the frames."""
        self.connection.push(encode(frame))

    def reply_error(self, text: str) -> None:
        self.reply({"type": "error", "error": text})
