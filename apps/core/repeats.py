"""Warnings that every request would repeat while a dependency is down, logged once in a while instead.

With Redis down, each API request found it unreadable twice (the epochs, the rate
limit) and logged a traceback each time: hundreds of lines a second that bury the
one that matters. A Repeated warning is logged at most once every `seconds` per
process; the next line says how many were held back meanwhile (`held_back`).
"""

import math
import threading
import time
from typing import Any, ClassVar


class Repeated:
    made: ClassVar[list["Repeated"]] = []

    def __init__(self, logger: Any, event: str, *, seconds: float = 10.0) -> None:
        self.logger, self.event, self.seconds = logger, event, seconds
        self._lock = threading.Lock()
        self._last = -math.inf
        self._held = 0
        Repeated.made.append(self)

    def warning(self, **fields: Any) -> None:
        """logger.warning(event, held_back=N, **fields), unless one was logged less than `seconds` ago."""
        with self._lock:
            now = time.monotonic()
            if now - self._last < self.seconds:
                self._held += 1
                return
            held, self._held, self._last = self._held, 0, now
        self.logger.warning(self.event, held_back=held, **fields)

    def reset(self) -> None:
        """As if never logged (for tests: each test sees its own first warning)."""
        with self._lock:
            self._last, self._held = -math.inf, 0
