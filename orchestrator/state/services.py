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
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import asyncpg

from orchestrator.commands import (
    CoordinationStore,
    CreateExecution,
    ExecutionWriter,
    LeaseStore,
    Presence,
    SharedSettings,
    SharedStateWriter,
    WriterSettings,
    node_label,
)
from orchestrator.events import (
    PLAINTEXT,
    BlobStore,
    DataKeySource,
    EventCodec,
    EventLog,
    ExecutionState,
    History,
    KafkaSecurity,
    KeyRing,
    Position,
    ProducerSettings,
    TopicsConfig,
    TopicSpec,
    default_codec,
    record_cache_request,
    timed,
)
from orchestrator.projections import (
    PostgresDataKeys,
    PostgresEventArchive,
    ProjectionSettings,
    close_pool,
    open_pool,
)
from orchestrator.state.cache import CacheConfig, InvalidationListener, StateCache, open_cache
from orchestrator.state.errors import NeedsPostgres, NotConfigured, NoWriter
from orchestrator.state.memoryhistory import MemoryHistory
from orchestrator.state.readmodel import PostgresReadModel
from orchestrator.state.running_task import bound
from orchestrator.state.sealed import open_mapping, open_value
from orchestrator.state.sync import SyncPolicy

log = logging.getLogger(__name__)
_T = TypeVar("_T")


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
    sync: SyncPolicy = field(default_factory=SyncPolicy)
    """``distributed.synchronization``: what every read of this runtime must reflect."""
    cache: CacheConfig = field(default_factory=CacheConfig)
    """``caching``: the levels in front of the read model (none: no cache)."""


class StateRuntime:
    """What the state API needs; built from a started pool and log (borrowed), or with
    :meth:`connect` (owned, closed by :meth:`close`).

    The memory backend passes its own adapters instead of a pool: ``log`` (a
    ``MemoryEventLog``), ``leases`` (a ``MemoryLeaseStore``) and ``read_model`` (a
    ``MemoryReadModel``); ``pool`` is then ``None`` and node presence is not used."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool | None,
        log: EventLog | Any,
        blob_store: BlobStore | None = None,
        settings: StateSettings | None = None,
        codec: EventCodec | None = None,
        leases: CoordinationStore | None = None,
        read_model: Any = None,
        data_keys: DataKeySource | None = None,
        encrypt: bool = False,
        history: History | None = None,
        policies: Any = None,
    ) -> None:
        self.pool = pool
        self.policies = policies
        """The pipeline runtime's behaviour (``orchestrator.runtime.Policies``) the app
        that built this runtime configured: what ``Orchestrator()`` uses unless given."""
        self.log = log
        self.blob_store = blob_store
        self.data_keys = data_keys
        """Opens sealed user data (set whenever a key ring is configured)."""
        settings = settings or StateSettings()
        if encrypt:
            if data_keys is None:
                raise ValueError("encrypt=True needs data_keys")
            settings = _sealing(settings, data_keys)
        self.settings = settings
        self.codec = codec or default_codec()
        self.node_id = self.settings.node_id
        if pool is None and (leases is None or read_model is None):
            raise ValueError("StateRuntime: give a pool, or both leases and read_model")
        self.leases: CoordinationStore = leases if leases is not None else LeaseStore(pool)
        self.read_model = (
            read_model
            if read_model is not None
            else PostgresReadModel(pool, self.settings.projection, self.codec)
        )
        #: Where states at a point of history come from (``checkpoint.restore``): the
        #: archive (the memory backend's, else ``execution_events``), from the newest
        #: snapshot when the app gives a history over its snapshot store.
        self.history = history or _archive_history(self.read_model, pool, self.settings, self.codec)
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
            settings=settings.shared,
        )
        self.writers: dict[str, ExecutionWriter] = {}
        self._written: dict[tuple[str, int], int] = {}
        self.sync = self.settings.sync
        self.cache: StateCache = open_cache(
            self.settings.cache, self.read_model, self.settings.read_timeout
        )
        self.cache.local_writer = self._local_write
        self.cache.on_lookup = record_cache_request  # cache_hit_rate
        self._listener: InvalidationListener | None = None
        self._owned = False
        # Presence is PostgreSQL's way to see a holder's death before its ttl (a database
        # session); on etcd a dead holder's keep-alives stop and its leases lapse by
        # themselves, and in memory there is no other process.
        self._presence = (
            Presence(pool, self.node_id, self.leases)
            if pool is not None and isinstance(self.leases, LeaseStore)
            else None
        )
        self._presence_tried = self._presence is None

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
        key_ring: KeyRing | None = None,
        encrypt: bool = False,
    ) -> StateRuntime:
        """A runtime with its own pool and log, on the projection's topics."""
        settings = settings or StateSettings()
        p = settings.projection
        shared = p.shared_topic or TopicsConfig().shared.name
        topics = TopicsConfig(
            pipeline=TopicSpec(name=p.pipeline_topic), shared=TopicSpec(name=shared)
        )
        pool = await open_pool(dsn, max_size=pool_size)
        event_log = EventLog(
            bootstrap_servers,
            default_codec(),
            ProducerSettings(security=kafka_security),
            topics=topics,
            supports_idempotence=supports_idempotence,
        )
        try:
            await event_log.start()
        except BaseException:
            await close_pool(pool)
            raise
        runtime = cls(  # its codec: the same default_codec() as the log's
            pool=pool,
            log=event_log,
            blob_store=blob_store,
            settings=settings,
            data_keys=None if key_ring is None else PostgresDataKeys(pool, key_ring),
            encrypt=encrypt,
        )
        runtime._owned = True
        return runtime

    def _local_write(self, key: tuple[str, str]) -> Position | None:
        writer = self.writers.get(key[1]) if key[0] == "execution" else None
        return None if writer is None else writer.last_position

    async def start_cache(self, dsn: str, connect_timeout: float = 10.0) -> None:
        """Listen for what the log applied (``invalidation.broadcast``) on ``dsn``."""
        if not self.cache.levels or not self.cache.policy.broadcast or self._listener:
            return
        self._listener = InvalidationListener(self.cache, dsn, connect_timeout=connect_timeout)
        await self._listener.start()

    async def close(self) -> None:
        """Close the writers (releasing their leases), then what :meth:`connect` opened."""
        writers, self.writers = list(self.writers.values()), {}
        for writer in writers:
            await writer.close()
        if self._presence is not None:
            await self._presence.stop()
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.stop()
        await self.cache.close()
        if self._owned:
            self._owned = False
            try:
                await self.log.stop()
            finally:
                if self.pool is not None:
                    await close_pool(self.pool)

    def postgres(self, feature: str) -> asyncpg.Pool:
        """The pool, for ``feature`` that runs on PostgreSQL only; :class:`NeedsPostgres`
        on a runtime without one (the memory backend)."""
        if self.pool is None:
            raise NeedsPostgres(feature)
        return self.pool

    async def __aenter__(self) -> StateRuntime:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- user data ------------------------------------------------------------------

    async def open_value(self, value: Any, scope: str) -> Any:
        """A value as the fold holds it, its blob or sealed marker opened
        (``UserDataErased`` if ``scope``'s data key was erased)."""
        return await open_value(value, scope, self.blob_store, self.data_keys)

    async def open_context(self, execution_id: str, context: Any) -> dict[str, Any]:
        """An execution's context with its input data and configuration opened."""
        return await open_mapping(dict(context), execution_id, self.blob_store, self.data_keys)

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
        if self._presence is None:
            return
        try:
            assert self._presence is not None  # tried is preset when there is none
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
        with timed("writer", "create_execution"):
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
    with bound(_current, runtime):
        yield runtime


def current_runtime(what: str = "orchestrator.state") -> StateRuntime:
    """The runtime of this context, else the process's; ``NotConfigured`` if neither."""
    runtime = _current.get() or _default
    if runtime is None:
        raise NotConfigured(what)
    return runtime


def runtime_or_none() -> StateRuntime | None:
    """:func:`current_runtime` or ``None``, without building an error (a hot path: every
    ``checkpoint.save`` asks)."""
    return _current.get() or _default


def _sealing(settings: StateSettings, data_keys: DataKeySource) -> StateSettings:
    """``settings`` with every writer sealing user data under its scope's data key."""
    writer, shared = settings.writer, settings.shared
    return replace(
        settings,
        writer=replace(writer, user_data=replace(writer.user_data, data_keys=data_keys)),
        shared=replace(shared, user_data=replace(shared.user_data, data_keys=data_keys)),
    )


def _archive_history(
    read_model: Any, pool: asyncpg.Pool | None, settings: StateSettings, codec: EventCodec
) -> History:
    """The history service over the runtime's archive, without snapshots."""
    if pool is None:  # the memory backend
        return History(MemoryHistory(read_model))
    return History(PostgresEventArchive(pool, codec, tables=settings.projection.tables))
