"""The one consumer-group member: what every processor of the log shares.

The projection processor, the snapshotter, the Redis read model's processor and the
task feed are each a :class:`GroupMember` driving a :class:`BatchHandler`. The member
does the group plumbing once; the handler only says what to do with partitions and
batches:

- **assignment and seek**: on assignment the member asks :meth:`BatchHandler.claim`
  where to read each new partition from (the offsets stored with the handler's data:
  a PostgreSQL transaction, a Redis hash, or nothing for Kafka's own offsets) and
  seeks there (design §4);
- **batches**: ``getmany`` up to ``batch_size`` records, handed to
  :meth:`BatchHandler.handle` under the member's lock, so a rebalance never runs
  in the middle of one;
- **fenced commit**: the handler writes its data and its next offsets together,
  fenced by its own store; when the fence says another member moved them, it raises
  :class:`Fenced` and the member re-claims every assigned partition;
- **rebalance callbacks**: a revoke first waits for the write in hand
  (:meth:`BatchHandler.settle`); whatever a callback raises is kept and raised by the
  loop, because aiokafka logs and drops it (it would leave partitions assigned and
  never claimed: a member that processes nothing);
- **outages** of Kafka or the handler's store (``transient``) are ridden out with
  bounded backoff, logged once (``events.outage``), then every assigned partition is
  claimed again from its stored offsets: a batch whose commit was lost with the
  connection is neither lost nor applied twice;
- **graceful leave**: ``request_stop`` finishes the batch in hand, ``stop`` leaves the
  group; Kafka's committed offsets are written for lag metrics only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from orchestrator.events import metrics
from orchestrator.events.consumer import ConsumerSettings, EventConsumer, RawRecord, TopicPartition
from orchestrator.events.errors import LogError, error_fields
from orchestrator.events.outage import Outage
from orchestrator.events.resource import Resource

TP = tuple[str, int]


@error_fields("{_partitions} {why}")
class Fenced(Exception):
    """Raised by a handler whose write was refused by the fence: another member (or a
    rebuild swap) moved offsets of partitions this one thought it owned."""

    lost: Iterable[TP]
    why: str = "moved by another member"

    def __post_init__(self) -> None:
        self.lost = sorted(self.lost)

    @property
    def _partitions(self) -> str:
        return ", ".join(f"{t}[{p}]" for t, p in self.lost)


class BatchHandler:
    """What a processor does with its partitions and batches; the member calls it.

    Every method runs under the member's lock (never two at once). ``claim`` and
    ``handle`` may raise; ``release`` and ``reset`` should not. The member logs under
    the handler's module logger, so the log names the processor.
    """

    dependencies: ClassVar[str] = "Kafka"
    """What an outage is of, in the log line (``PostgreSQL or Kafka``)."""

    def is_transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` is an outage to ride out (else it stops the member)."""
        return False

    async def claim(self, tps: frozenset[TopicPartition]) -> Mapping[TopicPartition, int]:
        """Start these partitions afresh from the offsets stored with the data (forget
        anything held for them); return where to read each from (absent: Kafka's own)."""
        raise NotImplementedError

    async def release(self, tps: frozenset[TopicPartition]) -> None:
        """Forget partitions taken away (their write in hand has settled)."""

    async def handle(self, records: list[RawRecord]) -> None:
        """Process one batch (possibly empty, after an idle poll)."""
        raise NotImplementedError

    async def settle(self) -> None:
        """Finish the write in hand, if the handler overlaps writes with fetching."""

    async def reset(self) -> None:
        """After a failure: drop the work in hand quietly; a claim follows."""

    @property
    def positions(self) -> Mapping[TP, int]:
        """The next offsets committed with the data: Kafka gets them for lag tools."""
        return {}

    @property
    def read_positions(self) -> Mapping[TP, int]:
        """Where reading has got to, for the lag metric (default: ``positions``)."""
        return self.positions


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberSettings:
    """One member: its group, topics, batches, and how it names itself in logs."""

    group_id: str
    topics: Sequence[str]
    consumer: ConsumerSettings
    batch_size: int = 2000
    poll_timeout_ms: int = 100
    kafka_commit_interval_s: float | None = 1.0
    """How often Kafka's offsets are committed for lag tools (None: never, for a
    handler whose offsets Kafka holds in a transaction)."""
    label: str = ""
    """How logs name the member (``projection read_models``); default: the group."""
    lag_metric: bool = True
    """Whether the consumer-lag gauge is kept under ``group_id``."""

    @classmethod
    def of(
        cls,
        batching: Batching,
        group_id: str,
        topics: Sequence[str],
        consumer: ConsumerSettings,
        label: str = "",
        *,
        lag_metric: bool = True,
    ) -> MemberSettings:
        """A member batching as ``batching`` (a processor's settings) says."""
        return cls(
            group_id=group_id,
            topics=topics,
            consumer=consumer,
            batch_size=batching.batch_size,
            poll_timeout_ms=batching.poll_timeout_ms,
            kafka_commit_interval_s=batching.kafka_commit_interval_s,
            label=label,
            lag_metric=lag_metric,
        )


class Batching(Protocol):
    """The batching fields every processor's settings carry."""

    @property
    def batch_size(self) -> int: ...
    @property
    def poll_timeout_ms(self) -> int: ...
    @property
    def kafka_commit_interval_s(self) -> float | None: ...


class GroupMember(Resource):
    """One member of a consumer group driving a :class:`BatchHandler`."""

    def __init__(self, bootstrap: str, settings: MemberSettings, handler: BatchHandler) -> None:
        self._bootstrap = bootstrap
        self.settings = settings
        self._handler = handler
        self._transient = handler.is_transient
        self._log = logger = logging.getLogger(type(handler).__module__)
        self.label = settings.label or settings.group_id
        self._consumer: EventConsumer | None = None
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._failure: Exception | None = None
        self._reclaim = False
        self._last_kafka_commit = 0.0
        self._lag_commit: asyncio.Task[None] | None = None
        self._outage = Outage(f"{self.label}: {handler.dependencies}", logger)

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Connect and subscribe; the group is joined by the first fetch of ``run``."""
        consumer = EventConsumer(self._bootstrap, self.settings.consumer, group_id=self.group_id)
        await consumer.start()
        self._consumer = consumer
        consumer.subscribe(self.settings.topics, listener=self)

    async def stop(self) -> None:
        """Leave the group and close the connections; safe to call twice."""
        committing, self._lag_commit = self._lag_commit, None
        if committing is not None:
            await committing
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    def request_stop(self) -> None:
        """Finish the batch in hand, then return from ``run`` (what SIGTERM does)."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested."""
        return self._stopping.is_set()

    @property
    def group_id(self) -> str:
        return self.settings.group_id

    @property
    def consumer(self) -> EventConsumer:
        """The Kafka consumer (started): for a handler's seeks and offset look-ups."""
        if self._consumer is None:
            raise RuntimeError(f"{self.label} is not started: call start() or use async with")
        return self._consumer

    def assignment(self) -> frozenset[TopicPartition]:
        """The partitions owned now (none before start)."""
        return frozenset() if self._consumer is None else self._consumer.assignment()

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Read ``tp`` again from ``offset`` (a handler rewinding after a refused write)."""
        self.consumer.seek(tp, offset)

    # --- the rebalance listener (aiokafka drops what these raise: see the docstring) -

    async def on_partitions_revoked(self, revoked: frozenset[TopicPartition]) -> None:
        """Wait for the write in hand, then let the handler forget the partitions."""
        async with self._lock:
            await self._settle_in_callback()
            await self._handler.release(revoked)
        if self.settings.lag_metric:
            metrics.forget_consumer_lag(self.group_id, ((t.topic, t.partition) for t in revoked))
        if revoked:
            self._log.info("%s: revoked %s", self.label, _names(revoked))

    async def on_partitions_assigned(self, assigned: frozenset[TopicPartition]) -> None:
        """Claim the new partitions and seek each to its stored offset."""
        async with self._lock:
            await self._settle_in_callback()
            if self._consumer is None or not assigned:
                return
            try:
                await self._claim(assigned)
            except Exception as exc:
                # The loop gets every failure: an outage is ridden out and every
                # assigned partition claimed again once the store is back; anything
                # else stops the member.
                self._failure = exc

    async def _settle_in_callback(self) -> None:
        try:
            await self._handler.settle()
        except Exception as exc:
            self._failure = exc

    async def _claim(self, tps: frozenset[TopicPartition]) -> None:
        if not tps:
            return
        offsets = await self._handler.claim(tps)
        for tp, offset in offsets.items():
            self.consumer.seek(tp, offset)
        self._log.info(
            "%s: assigned %s",
            self.label,
            ", ".join(f"{t}[{p}]@{offsets.get(TopicPartition(t, p), '-')}" for t, p in sorted(tps)),
        )

    # --- the loop ------------------------------------------------------------------

    async def run(self) -> None:
        """Consume and hand batches over until ``request_stop``; errors propagate, except
        outages (ridden out, then every partition resumes from its stored offset) and
        :class:`Fenced` (every partition is claimed again)."""
        if self._consumer is None:
            raise RuntimeError(f"{self.label} is not started: call start() or use async with")
        outage = self._outage
        while True:
            delay = 0.0
            try:
                if self._reclaim:
                    async with self._lock:
                        self._failure = None
                        await self._claim(self.assignment())
                        self._reclaim = False
                await self._consume()
                return
            except Fenced as fenced:
                self._log.warning("%s: %s; re-reading the assignment", self.label, fenced)
            except Exception as exc:
                if not self._transient(exc) or self.stopping:
                    raise
                delay = outage.failed(exc)
            self._reclaim = True
            await self._handler.reset()
            if delay:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)

    async def _consume(self) -> None:
        s = self.settings
        consumer = self.consumer
        while not self.stopping:
            records = await consumer.getmany(max_records=s.batch_size, timeout_ms=s.poll_timeout_ms)
            async with self._lock:
                self._raise_failure()
                await self._handler.handle(records)
            self._outage.recovered()  # a batch went through: the outage, if any, is over
            self._commit_for_lag()
        async with self._lock:
            await self._handler.settle()
        self._raise_failure()

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def _commit_for_lag(self) -> None:
        """Kafka offsets, for lag tools only (at most every ``kafka_commit_interval_s``),
        committed in the background: the next batch never waits for a broker round trip
        (append->visible latency)."""
        every = self.settings.kafka_commit_interval_s
        now = time.monotonic()
        if every is None or now - self._last_kafka_commit < every or self._consumer is None:
            return
        previous = self._lag_commit
        if previous is not None:
            if not previous.done():
                return
            previous.result()  # a failure other than the broker's refusal surfaces here
        self._last_kafka_commit = now
        consumer = self._consumer
        if self.settings.lag_metric:
            lags: dict[TP, int] = {}
            for (topic, partition), offset in self._handler.read_positions.items():
                end = consumer.highwater(TopicPartition(topic, partition))
                if end is not None:
                    lags[(topic, partition)] = end - offset
            metrics.record_consumer_lag(self.group_id, lags)
        positions = self._handler.positions
        if positions:
            offsets = {TopicPartition(t, p): o for (t, p), o in positions.items()}
            self._lag_commit = asyncio.create_task(self._commit(consumer, offsets))

    async def _commit(self, consumer: EventConsumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            await consumer.commit(offsets)
        except LogError as exc:  # lag tools only: a refused commit is retried next time
            self._log.debug("%s: lag commit skipped: %s", self.label, exc)


class GroupProcess(BatchHandler, Resource):
    """A handler that owns its member: ``async with`` it and ``run()`` it.

    Subclasses set ``self.member`` in ``__init__`` and extend ``start`` / ``stop``
    with their own resources (a pool, a producer)."""

    member: GroupMember

    async def start(self) -> None:
        """Connect to Kafka and subscribe; the group is joined by ``run``."""
        await self.member.start()

    async def stop(self) -> None:
        """Leave the group and close the connections; safe to call twice."""
        await self.member.stop()

    def request_stop(self) -> None:
        """Finish the batch in hand, then return from ``run`` (what SIGTERM does)."""
        self.member.request_stop()

    async def run(self) -> None:
        """Consume and hand batches over until ``request_stop`` (see ``GroupMember``)."""
        await self.member.run()


def _names(tps: Iterable[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(tps))
