"""A per-batch progress bar for ``nerva-xp train``, drawn on an interactive stderr only.

When stderr is not a terminal (logs, pipes, tests) the bar is silent, so the epoch table on stdout
stays clean. Redraws are throttled to ten per second and the line is cleared at the end of an epoch.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator

WIDTH = 30


class ProgressBar:
    """``bar(batches, epoch)`` wraps an epoch's batches, drawing ``epoch 3/100 [###...] 12/15``."""

    def __init__(self, epochs: int, stream=None, enabled: bool | None = None):
        self.epochs = epochs
        self.stream = sys.stderr if stream is None else stream
        self.enabled = self._is_terminal() if enabled is None else enabled

    def _is_terminal(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def __call__(self, batches: Iterable, epoch: int) -> Iterable:
        if not self.enabled:
            return batches
        return self._wrap(batches, epoch)

    def _draw(self, epoch: int, done: int, total: int) -> None:
        filled = WIDTH * done // max(total, 1)
        bar = "#" * filled + "." * (WIDTH - filled)
        self.stream.write(f"\repoch {epoch + 1}/{self.epochs} [{bar}] {done}/{total}")
        self.stream.flush()

    def _wrap(self, batches, epoch: int) -> Iterator:
        total = len(batches)
        last = 0.0
        try:
            for done, batch in enumerate(batches, start=1):
                yield batch
                now = time.monotonic()
                if now - last >= 0.1 or done == total:
                    self._draw(epoch, done, total)
                    last = now
        finally:
            self.stream.write("\r\033[K")
            self.stream.flush()
