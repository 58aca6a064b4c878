"""Riding out an outage: bounded exponential backoff, logged once when it starts and
once when it ends (with its duration), never once per attempt.

Every long-running process (projection processor, snapshotter, supervisor, API) uses
this one helper when Kafka, PostgreSQL or S3 goes away:

- :class:`Outage` is the state of one dependency's outage: :meth:`Outage.failed` is
  called on every failed attempt (it logs the first one only) and returns how long to
  wait; :meth:`Outage.recovered` is called on the next success (it logs the end, with
  the duration and the number of attempts, if there was an outage).
- :func:`ride_out` retries one awaitable call through an :class:`Outage`.

The schedule is "exponential, capped, full jitter" (AWS architecture blog, *Exponential
Backoff And Jitter*). It is written here, not taken from tenacity or backoff: those
wrap one call, while the processor and snapshotter loops retry "reconnect, re-read the
stored offsets, go on" across several calls, and the schedule itself is one line.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

_T = TypeVar("_T")

Transient = Callable[[BaseException], bool]
"""Whether an error is an outage worth waiting out (else it propagates)."""


class Outage:
    """One dependency's outage as a log sees it: one line at the start, one at the end."""

    def __init__(
        self,
        what: str,
        logger: logging.Logger,
        *,
        initial_delay: float = 0.1,
        max_delay: float = 10.0,
    ) -> None:
        if not 0 < initial_delay <= max_delay:
            raise ValueError("need 0 < initial_delay <= max_delay")
        self.what = what
        self._logger = logger
        self._initial = initial_delay
        self._max = max_delay
        self._since: float | None = None
        self.attempts = 0
        self.outages = 0

    @property
    def ongoing(self) -> bool:
        """Whether the last attempt failed."""
        return self._since is not None

    def failed(self, exc: BaseException) -> float:
        """Record a failed attempt; log it if it starts an outage; the delay to wait."""
        if self._since is None:
            self._since = time.monotonic()
            self.attempts = 0
            self.outages += 1
            self._logger.warning(
                "%s unavailable, retrying with backoff (up to %.0f s apart): %s: %s",
                self.what,
                self._max,
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
            )
        self.attempts += 1
        ceiling = min(self._max, self._initial * 2 ** min(self.attempts - 1, 30))
        return random.uniform(self._initial, ceiling)

    def recovered(self) -> None:
        """Record a success; log the end of the outage, if there was one."""
        if self._since is None:
            return
        took = time.monotonic() - self._since
        self._since = None
        self._logger.warning(
            "%s available again after %.1f s (%s failed attempt(s))",
            self.what,
            took,
            self.attempts,
        )


async def ride_out(
    call: Callable[[], Awaitable[_T]],
    *,
    outage: Outage,
    transient: Transient,
    stop: asyncio.Event | None = None,
) -> _T:
    """``await call()`` until it succeeds, waiting out transient errors with backoff.

    A non-transient error propagates at once. With ``stop`` set while waiting, the last
    transient error is raised instead of waiting on.
    """
    while True:
        try:
            result = await call()
        except Exception as exc:
            if not transient(exc):
                raise
            delay = outage.failed(exc)
            if stop is None:
                await asyncio.sleep(delay)
            else:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    continue
                raise
            continue
        outage.recovered()
        return result


CLIENT_LOGGERS = (
    "aiokafka",
    "aiokafka.conn",
    "aiokafka.cluster",
    "aiokafka.consumer.consumer",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.producer.producer",
    "aiokafka.producer.sender",
    "asyncpg.pool",
)
"""Where aiokafka and asyncpg's pool complain, once per reconnect attempt, while a
broker or the database is down."""


class RepeatFilter(logging.Filter):
    """Let a warning through once per outage, not once per attempt: a message template
    seen again within ``quiet`` seconds of its last occurrence is dropped.

    aiokafka logs "Unable connect to node ..." at ERROR on every reconnect attempt
    (thousands of lines during one broker outage); with this filter the first one of
    each kind is kept, and the next one only after ``quiet`` seconds without any.
    """

    def __init__(self, quiet: float = 60.0) -> None:
        super().__init__()
        self._quiet = quiet
        self._last: dict[tuple[str, object], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.msg)
        now = time.monotonic()
        last = self._last.get(key)
        self._last[key] = now
        if len(self._last) > 1000:
            self._last = {key: now}
        return last is None or now - last >= self._quiet


def quiet_client_logs(quiet: float = 60.0) -> None:
    """Install :class:`RepeatFilter` on the client libraries' loggers (once per process)."""
    for name in CLIENT_LOGGERS:
        target = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in target.filters):
            target.addFilter(RepeatFilter(quiet))
