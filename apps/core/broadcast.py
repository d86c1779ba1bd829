"""broadcast_on_commit(): tell live pages about a change once it is committed, never before."""

from typing import Any

import structlog
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = structlog.get_logger(__name__)


def group_name(topic: str) -> str:
    """The channel-layer group that a topic's subscribers (one per web process) join."""
    return f"topic.{topic}"


def broadcast_on_commit(topic: str, payload: dict[str, Any], *, using: str = "default") -> None:
    """Send payload to the topic's group after the current transaction commits (at once outside one).

    A broadcast is a hint to refresh, not a record: if the channel layer is down
    the change is still in the database, so a failure is logged, never raised.
    """

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            async_to_sync(layer.group_send)(
                group_name(topic), {"type": "broadcast", "topic": topic, "payload": payload}
            )
        except Exception:
            logger.warning("broadcast_failed", topic=topic, exc_info=True)

    transaction.on_commit(send, using=using)
