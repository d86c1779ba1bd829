"""The dashboard's WebSocket: staff only. For now it answers pings; live topics come later."""

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

CLOSE_NOT_LOGGED_IN = 4401
CLOSE_NOT_ALLOWED = 4403


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        # Accept first: a close code only reaches the browser after the handshake.
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_NOT_LOGGED_IN)
        elif not (user.is_active and user.is_staff):
            await self.close(code=CLOSE_NOT_ALLOWED)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self.send_json({"type": "error", "error": "expected an object with a string 'type'"})
        elif content["type"] == "ping":
            await self.send_json({"type": "pong", "id": content.get("id")})
        else:
            await self.send_json({"type": "error", "error": f"unknown message type {content['type'][:64]!r}"})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        if text_data is None:
            await self.send_json({"type": "error", "error": "binary frames are not accepted"})
            return
        try:
            content = await self.decode_json(text_data)
        except ValueError:
            await self.send_json({"type": "error", "error": "not valid JSON"})
            return
        await self.receive_json(content, **kwargs)
