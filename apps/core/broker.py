"""The embedded mode's broker: kombu's file-system transport, with messages that appear whole.

kombu creates a message's file under its final name and then writes into it, so
a worker listing the folder at that moment takes an empty or half-written file,
fails to decode it ("Unrecoverable error: JSONDecodeError") and the embedded
worker stops for good (celery/kombu#1551). Here a message is written under a
name the worker skips, then renamed into place: a rename within one folder is
atomic, so a worker sees a whole message or none.
"""

import os
import uuid
from time import monotonic_ns
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        # Workers take messages in the order of their names: kombu's milliseconds leave
        # the messages of one millisecond in random order, nanoseconds keep a producer's order.
        name = f"{monotonic_ns():020d}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.part")  # not "<queue>.msg" after its first dot
        try:
            with open(partial, "wb") as file:
                file.write(dumps(payload).encode())
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
