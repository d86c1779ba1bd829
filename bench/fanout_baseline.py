"""The fan-out benchmark's baseline: the least a Python broadcast server can do, on the `websockets` library.

One asyncio server (uvloop) speaking the dashboard's protocol as far as the
benchmark's clients use it: `subscribe` (answered with `subscribed` and a
snapshot carrying the last seq delivered), `resync` (a snapshot), `ping`. The
publisher (bench/fanout_publisher.py, --baseline) PUBLISHes each frame, already
stamped with seq and ts, on a Redis pub/sub channel; the server decodes it,
serialises it once and hands the same bytes to every subscribed socket with
websockets' broadcast(), which writes without waiting (no per-socket queue,
no backpressure: a stalled socket's frames pile up in its write buffer until
the keepalive ping times out).

Run by bench/dashboard_fanout.py:
    python -m bench.fanout_baseline --port PORT --redis redis://127.0.0.1:6379/5
"""

import argparse
import time
from typing import Any

import orjson
import redis.asyncio as redis
import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

CHANNEL = "bench:fanout:{topic}"  # the pub/sub channel the baseline publisher uses per topic
TOPICS = ("metrics",)


class Hub:
    """The subscribed sockets per topic and the last seq delivered on each."""

    def __init__(self) -> None:
        self.sockets: dict[str, set[ServerConnection]] = {topic: set() for topic in TOPICS}
        self.last_seq = dict.fromkeys(TOPICS, 0)

    def snapshot(self, topic: str) -> bytes:
        frame = {"topic": topic, "type": "snapshot", "seq": self.last_seq[topic], "ts": time.time(), "data": {}}
        return orjson.dumps(frame)

    async def handle(self, socket: ServerConnection) -> None:
        """One socket's messages until it closes."""
        try:
            async for text in socket:
                await self.answer(socket, orjson.loads(text))
        except ConnectionClosed:
            pass
        finally:
            for members in self.sockets.values():
                members.discard(socket)

    async def answer(self, socket: ServerConnection, message: Any) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "subscribe":
            topics = [topic for topic in message.get("topics", []) if topic in self.sockets]
            for topic in topics:
                self.sockets[topic].add(socket)
            await socket.send(orjson.dumps({"type": "subscribed", "topics": topics, "denied": []}), text=True)
            for topic in topics:
                await socket.send(self.snapshot(topic), text=True)
        elif kind == "resync" and message.get("topic") in self.sockets:
            await socket.send(self.snapshot(message["topic"]), text=True)
        elif kind == "ping":
            await socket.send(orjson.dumps({"type": "pong", "id": message.get("id")}), text=True)
        else:
            await socket.send(orjson.dumps({"type": "error", "error": "unknown message"}), text=True)

    async def relay(self, redis_url: str) -> None:
        """Every published frame, serialised once, to every subscribed socket of its topic."""
        connection = redis.from_url(redis_url)
        pubsub = connection.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(*(CHANNEL.format(topic=topic) for topic in TOPICS))
        async for message in pubsub.listen():
            frame = orjson.loads(message["data"])
            topic = frame["topic"]
            self.last_seq[topic] = frame["seq"]
            broadcast(self.sockets[topic], orjson.dumps(frame), text=True)


async def main(port: int, redis_url: str) -> None:
    hub = Hub()
    async with serve(hub.handle, "127.0.0.1", port, compression=None):
        print("ready", flush=True)
        await hub.relay(redis_url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True, help="the Redis URL the publisher publishes to")
    args = parser.parse_args()
    uvloop.run(main(args.port, args.redis))
