"""The progress bar of `backup run` and `backup restore` on a terminal: phase, bytes, share and rate on one line.

The services report every chunk (progress(phase, done, total)); a terminal needs
a few redraws a second, so the line is redrawn at most 10 times a second and at
every phase change. Off when stderr is not a terminal: cron's mail stays clean.
"""

import time
from types import TracebackType
from typing import Any

from django.template.defaultfilters import filesizeformat

REDRAW_SECONDS = 0.1
WIDTH = 24  # characters of the bar itself


class ProgressBar:
    def __init__(self, out: Any, *, enabled: bool) -> None:
        self.out, self.enabled = out, enabled
        self.phase, self.phase_started, self.drawn_at, self.width = "", 0.0, 0.0, 0

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.enabled and self.phase:
            self.out.write("")  # end the line, so that what follows starts on its own

    def __call__(self, phase: str, done: int, total: int | None = None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if phase != self.phase:
            if self.phase:
                self.out.write("")  # the finished phase keeps its last line
            self.phase, self.phase_started, self.width = phase, now, 0
        elif now - self.drawn_at < REDRAW_SECONDS:
            return
        self.drawn_at = now
        self.draw(line(phase, done, total, now - self.phase_started))

    def draw(self, text: str) -> None:
        self.out.write("\r" + text.ljust(self.width), ending="")
        self.width = len(text)
        self.out.flush()


def line(phase: str, done: int, total: int | None, seconds: float) -> str:
    rate = f"{filesizeformat(done / seconds)}/s" if seconds > 0 else ""
    if total:
        share = min(done / total, 1.0)
        filled = round(share * WIDTH)
        bar = "#" * filled + "-" * (WIDTH - filled)
        return f"{phase:<16} [{bar}] {share:4.0%} {filesizeformat(done)} of {filesizeformat(total)} {rate}"
    return f"{phase:<16} {filesizeformat(done)} {rate}"
