"""Listen to a broadcast topic the way a web process does, in one event loop, while a test acts."""

from collections.abc import Callable

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import DEFAULT_CHANNEL_LAYER, InMemoryChannelLayer, channel_layers, get_channel_layer

from apps.core.broadcast import group_name


def listen(
    topic: str, action: Callable[[], object], count: int = 1, where: Callable[[dict], bool] = lambda payload: True
) -> tuple[list[dict], int]:
    """Subscribe to topic, run action (in the test's thread, so in its transaction), and return the first
    `count` payloads that arrive (of those `where` accepts: tests in other processes may broadcast on the
    same topic) and in how many frames they came.

    With channels-redis the listener is a layer of its own: a layer's receive
    state belongs to one event loop, and the process's layer is also used by
    the publisher thread. The in-process layer cannot be shared that way, so
    the process's own is used.
    """
    layer = get_channel_layer()
    if not isinstance(layer, InMemoryChannelLayer):
        layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)

    async def subscribe_act_receive() -> tuple[list[dict], int]:
        name = await layer.new_channel()
        await layer.group_add(group_name(topic), name)
        try:
            await sync_to_async(action)()
            payloads, frames = [], 0
            while len(payloads) < count:
                message = await layer.receive(name)
                assert message["topic"] == topic, message
                payloads += [payload for payload in message["frames"] if where(payload["data"])]
                frames += 1
            return payloads, frames
        finally:
            await layer.group_discard(group_name(topic), name)

    return async_to_sync(subscribe_act_receive)()
