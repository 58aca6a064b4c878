"""``StateDebugger``: the seed's "State Debugging" API.

    debugger = StateDebugger()        # the process's runtime (orchestrator.state.configure)
    report = await debugger.check_consistency(pipeline_id="research_pipeline")
    trace = await debugger.trace_state_changes(execution_id="exec_12345",
                                               from_time=datetime.now(UTC) - timedelta(hours=1))
    bottlenecks = await debugger.analyze_bottlenecks()

Each returns a frozen report. The debugger only reads: the read model, the event
archive, the snapshot index and store, and (for ``source="log"`` and consumer lag)
Kafka. Built without arguments it borrows the process's ``StateRuntime`` (its pool,
log and projection settings) at the first call; a tool may pass ``pool=`` and
``projection=`` (and ``bootstrap_servers=``) instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from orchestrator.debug.bottlenecks import BottleneckReport, analyze
from orchestrator.debug.consistency import ConsistencyChecker, ConsistencyReport
from orchestrator.debug.errors import HistoryError, HistoryNotFound
from orchestrator.debug.replay import Replayed, Replayer, ReplayStep, Source, Target
from orchestrator.debug.trace import StateTrace, TraceEntry, trace_entries
from orchestrator.events import (
    PLAINTEXT,
    EventArchive,
    EventCodec,
    EventLog,
    ExecutionState,
    KafkaSecurity,
    LogReader,
    SnapshotBases,
    default_codec,
    reading_log,
)
from orchestrator.projections import PostgresEventArchive, ProjectionSettings, ReadModelQueries
from orchestrator.snapshots import (
    PostgresSnapshotIndex,
    SnapshotBaseReader,
    SnapshotCodec,
    SnapshotStore,
)
from orchestrator.state import StateRuntime, current_runtime


@dataclass(frozen=True, slots=True)
class _Parts:
    pool_or_none: asyncpg.Pool | None
    projection: ProjectionSettings
    codec: EventCodec
    log: EventLog | None
    archive: EventArchive
    replayer: Replayer

    @property
    def pool(self) -> asyncpg.Pool:
        if self.pool_or_none is None:
            raise HistoryError(
                "this debugger reads an in-process history (the memory backend): replay, "
                "replay_steps and trace_state_changes work; consistency checks, bottlenecks "
                "and consumer lag read PostgreSQL"
            )
        return self.pool_or_none


class StateDebugger:
    """Reads an execution's history and the read model to answer debugging questions."""

    def __init__(
        self,
        runtime: StateRuntime | None = None,
        *,
        pool: asyncpg.Pool | None = None,
        projection: ProjectionSettings | None = None,
        bootstrap_servers: str | None = None,
        log: EventLog | None = None,
        use_snapshots: bool = True,
        snapshot_store: SnapshotStore | None = None,
        snapshot_codec: SnapshotCodec | None = None,
        s3_endpoint_url: str | None = None,
        page_size: int = 1000,
        kafka_security: KafkaSecurity = PLAINTEXT,
        history: EventArchive | None = None,
    ) -> None:
        self._history = history  # an in-process history instead of the PostgreSQL archive
        self._runtime = runtime
        self._security = kafka_security
        self._pool = pool
        self._projection = projection
        self._bootstrap = bootstrap_servers
        self._log = log
        self._use_snapshots = use_snapshots
        self._snapshot_store = snapshot_store
        self._snapshot_codec = snapshot_codec
        self._s3_endpoint_url = s3_endpoint_url
        self._page_size = page_size
        self._parts: _Parts | None = None

    def _resolve(self) -> _Parts:
        if self._parts is not None:
            return self._parts
        if self._history is not None:
            replayer = Replayer(self._history)
            codec = default_codec()
            settings = self._projection or ProjectionSettings()
            self._parts = _Parts(None, settings, codec, None, self._history, replayer)
            return self._parts
        pool, projection, log = self._pool, self._projection, self._log
        codec = default_codec()
        snapshots: SnapshotBases | None = None
        if pool is None:
            runtime = self._runtime or current_runtime("StateDebugger")
            pool, codec = runtime.pool, runtime.codec
            projection = projection or runtime.settings.projection
            log = log or runtime.log
            if self._snapshot_store is None and self._snapshot_codec is None:
                snapshots = runtime.history.snapshots  # the app's store and codec (keys)
        projection = projection or ProjectionSettings()
        archive = PostgresEventArchive(pool, codec, tables=projection.tables)
        log_reader = None
        if self._bootstrap is not None or log is not None:
            log_reader = LogReader(
                projection.pipeline_topic,
                bootstrap_servers=self._bootstrap,
                log=log,
                codec=codec,
                security=self._security,
            )
        if not self._use_snapshots:
            snapshots = None
        elif snapshots is None:
            snapshots = SnapshotBaseReader(
                PostgresSnapshotIndex(pool),
                self._snapshot_codec,
                self._snapshot_store,
                s3_endpoint_url=self._s3_endpoint_url,
            )
        replayer = Replayer(archive, log=log_reader, snapshots=snapshots)
        replayer.history.page_size = self._page_size
        self._parts = _Parts(pool, projection, codec, log, archive, replayer)
        return self._parts

    @property
    def archive(self) -> EventArchive:
        """The event archive this debugger reads."""
        return self._resolve().archive

    @property
    def replayer(self) -> Replayer:
        """The replayer this debugger reads histories with."""
        return self._resolve().replayer

    # --- replay ----------------------------------------------------------------------

    async def replay(
        self, execution_id: str, target: Target | None = None, *, source: Source = "archive"
    ) -> Replayed:
        """The execution's state at ``target`` (default: latest)."""
        return await self.replayer.state(execution_id, target, source=source)

    def replay_steps(
        self,
        execution_id: str,
        target: Target | None = None,
        *,
        source: Source = "archive",
        last: int | None = None,
        start_sequence: int | None = None,
    ) -> AsyncGenerator[ReplayStep, None]:
        """Each event with the state before and after it, streamed; ``last=N``: the
        events after sequence ``last_sequence - N`` of the target state only."""
        return self._steps(execution_id, target, source, last, start_sequence)

    async def _steps(
        self,
        execution_id: str,
        target: Target | None,
        source: Source,
        last: int | None,
        start_sequence: int | None,
    ) -> AsyncGenerator[ReplayStep, None]:
        replayer = self.replayer
        if last is not None:
            end = await replayer.last_sequence(execution_id, target)
            start_sequence = end - last if end > last else None
        steps = replayer.steps(
            execution_id, target, source=source, start_sequence=start_sequence or None
        )
        async with contextlib.aclosing(steps) as stream:
            async for item in stream:
                yield item

    # --- the seed's three methods ----------------------------------------------------

    async def check_consistency(
        self, pipeline_id: str | None = None, *, source: Source = "archive"
    ) -> ConsistencyReport:
        """Every read-model row of ``pipeline_id`` (default: all) against the fold of the
        archive (or the log), missing executions, sequence gaps and dead letters."""
        parts = self._resolve()
        log = parts.log
        if source == "log" and log is None:
            if self._bootstrap is None:
                raise ValueError("check_consistency(source='log') needs Kafka (bootstrap_servers)")
            async with reading_log(self._bootstrap, parts.codec, self._security) as log:
                checker = ConsistencyChecker(parts.pool, parts.projection, parts.codec, log=log)
                return await checker.check(pipeline_id, source=source)
        checker = ConsistencyChecker(parts.pool, parts.projection, parts.codec, log=log)
        return await checker.check(pipeline_id, source=source)

    def iter_state_changes(
        self,
        execution_id: str,
        from_time: datetime,
        *,
        to_time: datetime | None = None,
        source: Source = "archive",
    ) -> AsyncGenerator[TraceEntry, None]:
        """The entries of :meth:`trace_state_changes`, streamed one by one."""
        steps = self.replayer.steps(
            execution_id, Target(time=_aware(to_time)), source=source, start_time=_aware(from_time)
        )
        return trace_entries(steps)

    async def trace_state_changes(
        self,
        execution_id: str,
        from_time: datetime,
        *,
        to_time: datetime | None = None,
        source: Source = "archive",
        limit: int | None = None,
    ) -> StateTrace:
        """Every event of the execution after ``from_time`` with its state changes."""
        since = _aware(from_time)
        assert since is not None
        replayer = self.replayer
        try:
            initial: ExecutionState | None = (
                await replayer.state(execution_id, Target(time=since), source=source)
            ).state
        except HistoryNotFound:
            initial = None  # created after from_time (an unknown id fails below)
        entries: list[TraceEntry] = []
        truncated = False
        final = initial
        stream = self.iter_state_changes(execution_id, since, to_time=to_time, source=source)
        async with contextlib.aclosing(stream) as items:
            async for entry in items:
                if limit is not None and len(entries) >= limit:
                    truncated = True
                    break
                entries.append(entry)
        if entries and not truncated:
            end = Target(time=_aware(to_time))
            final = (await replayer.state(execution_id, end, source=source)).state
        elif truncated:
            final = None
        return StateTrace(
            execution_id, since, _aware(to_time), initial, final, tuple(entries), truncated
        )

    async def analyze_bottlenecks(
        self, pipeline_id: str | None = None, *, executions: int = 1000, top: int = 10
    ) -> BottleneckReport:
        """Slowest tasks (p50/p95), most-retried tasks, longest waits between tasks over
        the newest ``executions`` executions, and the projection's consumer lag."""
        states = await self._recent_states(pipeline_id, executions)
        report = analyze(states, top=top)
        return dataclasses.replace(report, consumer_lag=await self.consumer_lag())

    async def consumer_lag(self) -> dict[str, int]:
        """``{"topic:partition": events not yet applied}`` for every partition the
        projection has stored offsets of: Kafka's end offset minus ``next_offset``
        (``{}`` without Kafka)."""
        parts = self._resolve()
        applied = await ReadModelQueries(parts.pool, parts.projection).watermarks()
        topics = sorted({topic for topic, _ in applied})
        async with contextlib.AsyncExitStack() as stack:
            log = parts.log
            if log is None:
                if self._bootstrap is None:
                    return {}
                log = await stack.enter_async_context(
                    reading_log(self._bootstrap, parts.codec, self._security)
                )
            ends = {topic: await log.end_offsets(topic) for topic in topics}
        return {
            f"{topic}:{partition}": max(0, end - applied.get((topic, partition), 0))
            for topic, offsets in ends.items()
            for partition, end in sorted(offsets.items())
        }

    async def _recent_states(self, pipeline_id: str | None, limit: int) -> list[ExecutionState]:
        parts = self._resolve()
        return await ReadModelQueries(parts.pool, parts.projection).recent_executions(
            pipeline_id, limit
        )


def _aware(when: datetime | None) -> datetime | None:
    if when is None or when.tzinfo is not None:
        return when
    return when.astimezone(UTC)  # a naive time is the caller's local time (datetime.now())
