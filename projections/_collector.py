"""When the cyclic garbage collector may run while a processor folds batches.

A batch allocates hundreds of thousands of objects that live until it is written
(Kafka records, envelopes, states, rows), so the collector, left alone, would run
every few hundred allocations and traverse them again and again: about a fifth of a
processor's time. Reference counting frees everything acyclic as usual, so pausing
the collector does not make memory grow; only reference cycles (rare here: asyncio
futures, exceptions) wait for the next collection.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block; it may run right after.

    The pause spans ``await``s, so other tasks of the process run with it too, for one
    batch at most. A nested pause (a :class:`CollectorSchedule` around the engine's)
    leaves it to the outer one.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class CollectorSchedule:
    """The collector paused across batches, let run at most every ``every_s`` seconds.

    Re-enabling it after each batch costs a collection per batch over every object the
    pipeline still holds (the batch being written, the one staged ahead): at full speed
    that is several collections a second, each traversing the same live objects. Here
    it runs once per ``every_s`` whatever the batch rate. Only a pause this schedule
    started is ended by it: a collector someone else disabled stays disabled.
    """

    def __init__(self, every_s: float = 1.0) -> None:
        self.every_s = every_s
        self._paused_by_us = False
        self._resumed_at = time.monotonic()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Pause for one batch; resume afterwards if ``every_s`` has passed."""
        if gc.isenabled():
            gc.disable()
            self._paused_by_us = True
        try:
            yield
        finally:
            now = time.monotonic()
            if self._paused_by_us and now - self._resumed_at >= self.every_s:
                self._resumed_at = now
                self.resume()

    def resume(self) -> None:
        """End a pause this schedule started (when the loop stops, or fails)."""
        if self._paused_by_us:
            self._paused_by_us = False
            gc.enable()
