"""The state runtime of a process: its pool, log, leases, read model and writers.

The seed's API is module-level (``await checkpoint.save(...)``,
``StateManager()``, ``BatchStateManager(batch_size=100)``), so these calls find what
they need here: the runtime set with :func:`configure` (process-wide) or
:func:`use_runtime` (this context only), and the running task set by the orchestrator
with :func:`task_scope`. Nothing connects at import time; ``configure`` is called by
the entry point (or a test fixture) once the pool and the log are started.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg

from orchestrator.commands.decide import CreateExecution
from orchestrator.commands.leases import LeaseStore, node_label
from orchestrator.commands.presence import Presence
from orchestrator.commands.shared import SharedSettings, SharedStateWriter
from orchestrator.commands.writer import ExecutionWriter, WriterSettings
from orchestrator.events.codec import EventCodec, default_codec
from orchestrator.events.envelope import Position
from orchestrator.events.log import EventLog, ProducerSettings
from orchestrator.events.security import PLAINTEXT, KafkaSecurity
from orchestrator.events.state import ExecutionState
from orchestrator.events.topics import TopicsConfig, TopicSpec
from orchestrator.events.userdata import BlobStore
from orchestrator.projections.settings import ProjectionSettings
from orchestrator.state.errors import NotConfigured, NoWriter
from orchestrator.state.readmodel import PostgresReadModel

log = logging.getLogger(__name__)


class ExecutionReader(Protocol):
    """What ``StateManager`` reads execution state from (PostgreSQL or Redis)."""

    async def load_execution(self, execution_id: str) -> ExecutionState | None: ...

    async def wait_for(self, position: Position, timeout: float) -> None: ...  # noqa: ASYNC109


@dataclass(frozen=True, slots=True, kw_only=True)
class StateSettings:
    """``node_id`` names this process in leases and events; ``projection`` is the
    projection whose tables the API reads (its topics must be the log's)."""

    node_id: str = field(default_factory=node_label)
    projection: ProjectionSettings = field(default_factory=ProjectionSettings)
    writer: WriterSettings = field(default_factory=WriterSettings)
    shared: SharedSettings = field(default_factory=SharedSettings)
    read_timeout: float = 30.0


class StateRuntime:
    """What the state API needs; built from a started pool and log (borrowed), or with
    :meth:`connect` (owned, closed by :meth:`close`)."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        log: EventLog,
        blob_store: BlobStore | None = None,
        settings: StateSettings | None = None,
        codec: EventCodec | None = None,
    ) -> None:
        self.pool = pool
        self.log = log
        self.blob_store = blob_store
        self.settings = settings or StateSettings()
        self.codec = codec or default_codec()
        self.node_id = self.settings.node_id
        self.leases = LeaseStore(pool)
        self.read_model = PostgresReadModel(pool, self.settings.projection)
        #: Where ``StateManager`` reads execution and task state (and what its consistent
        #: reads wait on, besides ``read_model``): the Redis read model with
        #: ``backend: "redis"``, else ``read_model``.
        self.state_reader: ExecutionReader = self.read_model
        self.shared = SharedStateWriter(
            log=log,
            leases=self.leases,
            read_model=self.read_model,
            topic=log.topics.shared.name,
            node_id=self.node_id,
            blob_store=blob_store,
            settings=self.settings.shared,
        )
        self.writers: dict[str, ExecutionWriter] = {}
        self._written: dict[tuple[str, int], int] = {}
        self._owned = False
        self._presence = Presence(pool, self.node_id, self.leases)
        self._presence_tried = False

    @classmethod
    async def connect(
        cls,
        *,
        dsn: str,
        bootstrap_servers: str,
        blob_store: BlobStore | None = None,
        settings: StateSettings | None = None,
        supports_idempotence: bool | None = None,
        pool_size: int = 10,
        kafka_security: KafkaSecurity = PLAINTEXT,
    ) -> StateRuntime:
        """A runtime with its own pool and log, on the projection's topics."""
        settings = settings or StateSettings()
        p = settings.projection
        shared = p.shared_topic or TopicsConfig().shared.name
        topics = TopicsConfig(
            pipeline=TopicSpec(name=p.pipeline_topic), shared=TopicSpec(name=shared)
        )
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=pool_size)
        codec = default_codec()
        event_log = EventLog(
            bootstrap_servers,
            codec,
            ProducerSettings(security=kafka_security),
            topics=topics,
            supports_idempotence=supports_idempotence,
        )
        try:
            await event_log.start()
        except BaseException:
            await pool.close()
            raise
        runtime = cls(
            pool=pool, log=event_log, blob_store=blob_store, settings=settings, codec=codec
        )
        runtime._owned = True
        return runtime

    async def close(self) -> None:
        """Close the writers (releasing their leases), then what :meth:`connect` opened."""
        writers, self.writers = list(self.writers.values()), {}
        for writer in writers:
            await writer.close()
        await self._presence.stop()
        if self._owned:
            self._owned = False
            try:
                await self.log.stop()
            finally:
                await self.pool.close()

    async def __aenter__(self) -> StateRuntime:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- writers -------------------------------------------------------------------

    def new_writer(self, execution_id: str) -> ExecutionWriter:
        """An unopened writer for ``execution_id`` wired to this runtime (not registered)."""
        return ExecutionWriter(
            execution_id,
            node_id=self.node_id,
            log=self.log,
            leases=self.leases,
            read_model=self.read_model,
            blob_store=self.blob_store,
            settings=self.settings.writer,
        )

    async def announce_presence(self) -> None:
        """Hold this node's presence lock (``commands.presence``), so that the leases it
        holds are taken over at once if this process dies; done on its first writer."""
        if self._presence_tried:
            return
        self._presence_tried = True
        try:
            await self._presence.start()
        except Exception as exc:  # an optimisation: without it, leases expire by ttl
            self._presence_tried = False
            logging.getLogger(__name__).warning(
                "node %s: cannot announce presence (%s: %s); a crash of this process is "
                "then noticed only when its leases expire",
                self.node_id,
                type(exc).__name__,
                exc,
            )

    async def create_execution(self, command: CreateExecution) -> ExecutionWriter:
        """Create an execution; its writer is registered for this process."""
        await self.announce_presence()
        writer = self.new_writer(command.execution_id)
        self.record([await writer.create(command)])
        self.writers[command.execution_id] = writer
        return writer

    async def open_execution(self, execution_id: str, *, wait: float = 0.0) -> ExecutionWriter:
        """Take over an existing execution (design §3); its writer is registered."""
        await self.announce_presence()
        writer = self.new_writer(execution_id)
        await writer.open(wait=wait)
        if writer.last_position is not None:
            self.record([writer.last_position])
        self.writers[execution_id] = writer
        return writer

    def writer_for(self, execution_id: str) -> ExecutionWriter:
        """The registered writer of ``execution_id``; ``NoWriter`` if this process has none."""
        writer = self.writers.get(execution_id)
        if writer is None:
            raise NoWriter(execution_id)
        return writer

    async def release_execution(self, execution_id: str) -> None:
        """Close the execution's writer and release its lease."""
        writer = self.writers.pop(execution_id, None)
        if writer is not None:
            # Its writes still count for read-your-writes after the writer is gone.
            if writer.last_position is not None:
                self.record([writer.last_position])
            await writer.close()

    # --- read-your-writes ----------------------------------------------------------

    def record(self, positions: Iterable[Position]) -> None:
        """Remember positions written through this runtime (for ``consistency='strong'``)."""
        for p in positions:
            key = (p.topic, p.partition)
            if p.offset > self._written.get(key, -1):
                self._written[key] = p.offset

    def written(self) -> list[Position]:
        """The latest position written per partition through this runtime: its writers
        (however they were called), checkpoints, batches and shared-state writes."""
        self.record(w.last_position for w in self.writers.values() if w.last_position)
        if self.shared.last_position is not None:
            self.record([self.shared.last_position])
        return [Position(t, p, o) for (t, p), o in sorted(self._written.items())]

    async def wait_for(
        self,
        positions: Iterable[Position],
        timeout: float | None = None,  # noqa: ASYNC109 (bounds each wait, as the port does)
    ) -> None:
        """Wait until the read model has applied every one of ``positions``."""
        limit = self.settings.read_timeout if timeout is None else timeout
        positions = list(positions)
        await asyncio.gather(*(self.read_model.wait_for(p, limit) for p in positions))
        if self.state_reader is not self.read_model:
            await asyncio.gather(*(self.state_reader.wait_for(p, limit) for p in positions))


# --- the process's runtime and the running task ---------------------------------------

_default: StateRuntime | None = None
_current: contextvars.ContextVar[StateRuntime | None] = contextvars.ContextVar(
    "orchestrator_state_runtime", default=None
)


def configure(runtime: StateRuntime | None) -> None:
    """Set (``None``: clear) the process-wide runtime the module-level API uses."""
    global _default
    _default = runtime


@contextlib.contextmanager
def use_runtime(runtime: StateRuntime) -> Iterator[StateRuntime]:
    """Use ``runtime`` in this context (and tasks started from it) only."""
    token = _current.set(runtime)
    try:
        yield runtime
    finally:
        _current.reset(token)


def current_runtime(what: str = "orchestrator.state") -> StateRuntime:
    """The runtime of this context, else the process's; ``NotConfigured`` if neither."""
    runtime = _current.get() or _default
    if runtime is None:
        raise NotConfigured(what)
    return runtime


@dataclass(frozen=True, slots=True)
class TaskContext:
    """The running task: the writer of its execution and the task's id."""

    writer: ExecutionWriter
    task_id: str

    @property
    def execution_id(self) -> str:
        return self.writer.execution_id


_task: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "orchestrator_state_task", default=None
)


@contextlib.contextmanager
def task_scope(writer: ExecutionWriter, task_id: str) -> Iterator[TaskContext]:
    """Run the body as task ``task_id`` of ``writer``'s execution (the orchestrator wraps
    each task's ``execute`` in this; tests may too)."""
    context = TaskContext(writer, task_id)
    token = _task.set(context)
    try:
        yield context
    finally:
        _task.reset(token)


def current_task() -> TaskContext | None:
    """The task running in this context, if any."""
    return _task.get()
