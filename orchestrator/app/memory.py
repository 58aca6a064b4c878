"""``MemoryStack``: the memory backend, everything in this process, no servers.

``orchestrator.connect(backend="memory")`` (or ``state_management.backend: "memory"``)
builds this instead of ``App``: the same ``StateRuntime``, writers, fold, checkpoints,
``Orchestrator``, ``StateManager``, locks and leader elections, wired to in-process
adapters of the same ports:

==================  ==========================================  =========================
port                Kafka + PostgreSQL                          memory
==================  ==========================================  =========================
event log           ``events.log.EventLog``                     ``events.memory.MemoryEventLog``
read models         ``state.readmodel.PostgresReadModel``       ``state.memory.MemoryReadModel``
leases (fencing)    ``commands.leases.LeaseStore``              ``commands.memory.MemoryLeaseStore``
blobs               filesystem / S3                             a dict, or files beside the dump
==================  ==========================================  =========================

The seed's ``config`` block acts: ``max_size`` bounds the bytes held (history is never
evicted: an append beyond it is refused; folded states of finished executions are
evicted LRU and folded again when read), and ``persistence`` dumps the log (not the
derived state) to ``path`` every ``interval`` seconds and at close, atomically, and
reloads and re-folds it at start. There is no recovery supervisor (one process: nobody
else to take over); ``resume`` works as on the servers.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from orchestrator.app.manager import ConfiguredStateManager
from orchestrator.app.options import AppOptions
from orchestrator.app.plan import _user_data, lease_ttl_for, policies_from
from orchestrator.app.topics import topics_from
from orchestrator.commands import MemoryLeaseStore, SharedSettings, WriterSettings
from orchestrator.config import MemoryBackend, Settings, parse_size
from orchestrator.events import (
    BlobStore,
    InputLimits,
    MemoryEventLog,
    cancel_and_wait,
    codec_for,
    read_dump,
    write_dump,
)
from orchestrator.projections import ProjectionSettings
from orchestrator.runtime import Orchestrator
from orchestrator.state import (
    FilesystemBlobStore,
    MemoryBlobStore,
    MemoryReadModel,
    NotConfigured,
    StateRuntime,
    StateSettings,
    configure,
    current_runtime,
)

log = logging.getLogger(__name__)


class MemoryStack:
    """One process's memory backend (see the module docstring); ``start``/``stop``."""

    projector = None
    snapshot_store = None

    def __init__(
        self, settings: Settings, options: AppOptions | None = None, *, node_id: str
    ) -> None:
        self.settings = settings
        self.options = options or AppOptions()
        backend = settings.backend()
        self.config = backend if isinstance(backend, MemoryBackend) else MemoryBackend()
        self.node_id = node_id
        self.max_bytes = parse_size(self.config.max_size)
        persistence = self.config.persistence
        self.dump_path = Path(persistence.path) if persistence.enabled else None
        self.log: MemoryEventLog | None = None
        self.read_model: MemoryReadModel | None = None
        self.leases = MemoryLeaseStore()
        self.runtime: StateRuntime | None = None
        self.orchestrator: Orchestrator | None = None
        self.loaded = 0
        """Records read back from the dump at start."""
        self._dumped_version = 0
        self._dumper: asyncio.Task[None] | None = None

    # --- start / stop ------------------------------------------------------------------

    async def start(self) -> None:
        settings, opts = self.settings, self.options
        notes: list[str] = []
        topics = topics_from(settings, notes=notes)
        lim = settings.state_management.limits
        limits = InputLimits(
            max_record_bytes=parse_size(lim.max_record_size),
            max_user_data_bytes=parse_size(lim.max_user_data_size),
            max_identifier_bytes=lim.max_identifier_length,
        )
        codec = codec_for(limits)
        self.log = event_log = MemoryEventLog(codec, topics=topics, max_bytes=self.max_bytes)
        self.read_model = MemoryReadModel(event_log, codec, max_bytes=self.max_bytes)
        if self.dump_path is not None and self.dump_path.exists():
            self.loaded = await asyncio.to_thread(self._load)
            log.info("memory backend: %d records reloaded from %s", self.loaded, self.dump_path)
        self._dumped_version = event_log.version
        policies = policies_from(settings)
        writer = WriterSettings(
            lease_ttl=lease_ttl_for(policies.recovery), user_data=_user_data(settings, notes)
        )
        projection = ProjectionSettings(
            pipeline_topic=topics.pipeline.name, shared_topic=topics.shared.name, limits=limits
        )
        state = StateSettings(
            node_id=self.node_id,
            projection=projection,
            writer=writer,
            shared=SharedSettings(user_data=writer.user_data),
        )
        self.runtime = runtime = StateRuntime(
            pool=None,
            log=event_log,
            blob_store=self._blob_store(),
            settings=state,
            codec=codec,
            leases=self.leases,
            read_model=self.read_model,
            policies=policies,
        )
        if opts.configure_process:
            configure(runtime)
        self.orchestrator = Orchestrator(
            runtime,
            pipelines=opts.pipelines,
            policies=policies,
            supervise=False,
            discover=opts.discover_pipelines,
        )
        if self.dump_path is not None:
            interval = self.config.persistence.interval
            self._dumper = asyncio.create_task(self._dump_every(interval), name="memory dump")

    def _load(self) -> int:
        assert self.log is not None and self.dump_path is not None
        return self.log.load(read_dump(self.dump_path))

    def _blob_store(self) -> BlobStore:
        if self.dump_path is None:
            return MemoryBlobStore()
        return FilesystemBlobStore(self.dump_path.with_name(self.dump_path.name + ".blobs"))

    async def stop(self) -> None:
        """Stop the runtime (releasing leases), dump a last time, unset the defaults."""
        dumper, self._dumper = self._dumper, None
        await cancel_and_wait(dumper)
        if self.orchestrator is not None:
            await self.orchestrator.stop()
        runtime, self.runtime = self.runtime, None
        if runtime is not None:
            await runtime.close()
            self._unconfigure(runtime)
        await self.dump()

    def _unconfigure(self, runtime: StateRuntime) -> None:
        try:
            current = current_runtime()
        except NotConfigured:
            return
        if current is runtime:
            configure(None)

    # --- persistence -------------------------------------------------------------------

    async def dump(self) -> bool:
        """Write the log to the dump path now if it changed since the last dump."""
        event_log = self.log
        if self.dump_path is None or event_log is None:
            return False
        version = event_log.version
        if version == self._dumped_version:
            return False
        records = list(event_log.dump())  # a consistent cut: taken on the loop
        size = await asyncio.to_thread(write_dump, self.dump_path, records)
        self._dumped_version = version
        log.debug("memory backend: %d records (%d bytes) dumped", len(records), size)
        return True

    async def _dump_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.dump()
            except OSError as exc:  # keep running; the next interval tries again
                log.warning("memory backend: dump to %s failed: %s", self.dump_path, exc)

    # --- what Connection serves ------------------------------------------------------------

    def state_manager(self) -> ConfiguredStateManager:
        """A ``StateManager`` with ``synchronization``'s strategy (every read is current)."""
        sync = self.settings.distributed.synchronization
        return ConfiguredStateManager(
            self.runtime, strategy=sync.strategy, conflict_resolution=sync.conflict_resolution
        )
