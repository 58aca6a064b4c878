"""``App``: one process of the stack, built from an :class:`AppPlan`.

Start order (``stop`` runs it backwards): pool (the process's one pool: the runtime,
the projection processor and the snapshotter all borrow it) → topics (``ensure_topics``: created as
planned, existing ones verified) → migrations and the runtime's tables → event log →
state runtime (made the process default, so the seed's module-level API works) →
projection processor → snapshotter → orchestrator (heartbeat, recovery supervisor) →
query API → retention pruning. Each piece is optional (``AppOptions``) so a worker
process runs only the runtime while another runs processors and the API.

``wait()`` returns when a background component fails, raising its error: the caller
(``orchestrator-state dev``) logs it once and exits non-zero.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import asyncpg

from orchestrator.app.blobretention import retention_forever
from orchestrator.app.connections import apply_migrations, open_pool
from orchestrator.app.manager import ConfiguredStateManager
from orchestrator.app.options import AppOptions
from orchestrator.app.plan import AppPlan
from orchestrator.app.redis_backend import RedisReadSide, start_redis_read_side
from orchestrator.app.stores import (
    blob_store,
    etcd_store,
    history_of,
    key_ring,
    snapshot_store,
)
from orchestrator.app.topics import ensure_configured_topics
from orchestrator.commands import SetVariable, StaleExpectedVersion
from orchestrator.config import RedisBackend, Settings
from orchestrator.devstack import ServiceEndpoints
from orchestrator.events import (
    EventLog,
    MetricsServer,
    ProducerSettings,
    Resource,
    TopicReport,
    codec_for,
    feed_for,
    select,
    serve_or_warn,
    start_cache,
)
from orchestrator.projections import PostgresDataKeys, Projector, close_pool
from orchestrator.runtime import Orchestrator
from orchestrator.snapshots import SnapshotStore
from orchestrator.state import NotConfigured, StateRuntime, current_runtime
from orchestrator.state import configure as state_runtime_configure

if TYPE_CHECKING:
    from orchestrator.app._api_server import EmbeddedServer

log = logging.getLogger(__name__)


class App(Resource):
    """See the module docstring; ``async with App(...)`` or ``start()``/``stop()``."""

    def __init__(
        self,
        plan: AppPlan,
        settings: Settings,
        options: AppOptions | None = None,
        *,
        endpoints: ServiceEndpoints | None = None,
    ) -> None:
        self.plan = plan
        self.settings = settings
        self.options = options or AppOptions()
        self.endpoints = endpoints or ServiceEndpoints()
        self.pool: asyncpg.Pool | None = None
        self.topic_report: TopicReport | None = None
        self.log: EventLog | None = None
        self.runtime: StateRuntime | None = None
        self.orchestrator: Orchestrator | None = None
        self.projector: Projector | None = None
        self.redis: RedisReadSide | None = None
        """The Redis read model (``backend: "redis"``): client, reader, processor."""
        self.snapshotter: Any = None
        self.snapshot_store: SnapshotStore | None = None
        self.api_url: str | None = None
        self.metrics: MetricsServer | None = None
        """The metrics server (``.url``), when ``metrics_address`` is set."""
        self._server: EmbeddedServer | None = None
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._cleanup: list[Callable[[], Awaitable[None]]] = []
        self._pool_to_close: asyncpg.Pool | None = None

    # --- start / stop ------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        plan, opts = self.plan, self.options
        ring = key_ring(plan.snapshots.encrypt)
        self.metrics = serve_or_warn(opts.metrics_address, log)
        if self.metrics is not None:
            self._cleanup.append(self._close_metrics)
        self.pool = pool = await open_pool(
            plan.dsn, max_size=plan.pool_size, deadline_s=plan.connect_timeout
        )
        self._pool_to_close = pool  # closed last: the processor and snapshotter borrow it
        self.topic_report = await ensure_configured_topics(
            plan.bootstrap,
            plan.topics,
            connect_deadline_s=plan.connect_timeout,
            security=plan.kafka_security,
        )
        await apply_migrations(pool, plan.table_names)
        self.log = event_log = EventLog(
            plan.bootstrap,
            codec_for(plan.projection.limits),
            ProducerSettings(
                delivery_timeout_ms=plan.delivery_timeout_ms, security=plan.kafka_security
            ),
            topics=plan.topics,
            supports_idempotence=plan.supports_idempotence,
        )
        await event_log.start()
        self._cleanup.append(event_log.stop)
        coordination = etcd_store(self.plan)
        if coordination is not None:
            self._cleanup.append(coordination.close)
        self.runtime = runtime = StateRuntime(
            pool=pool,
            log=event_log,
            blob_store=blob_store(self.plan, self.endpoints),
            settings=plan.state,
            leases=coordination,
            data_keys=None if ring is None else PostgresDataKeys(pool, ring),
            encrypt=plan.snapshots.encrypt,
            policies=plan.policies,
        )
        runtime.history = history_of(plan, self.endpoints, pool, runtime.codec)
        self._cleanup.append(runtime.close)
        await runtime.start_cache(plan.dsn, plan.connect_timeout)
        if opts.configure_process:
            select(self.settings.monitoring.metrics)
            start_cache(self.settings.caching.levels)  # the configured levels, at 0
            state_runtime_configure(runtime)
            self._cleanup.append(self._unconfigure)
        if opts.run_projector:
            await self._start_projector()
        await self._start_redis(runtime)
        if opts.run_snapshotter and plan.snapshots.enabled:
            await self._start_snapshotter()
        await self._seed_shared_state()
        self.orchestrator = Orchestrator(
            runtime,
            pipelines=opts.pipelines,
            policies=plan.policies,
            supervise=opts.supervise,
            discover=opts.discover_pipelines,
        )
        if opts.join_recovery:
            await self.orchestrator.start()
        self._cleanup.append(self.orchestrator.stop)
        if opts.api_port is not None:
            await self._start_api()
        if self.snapshot_store is not None and opts.prune_every > 0:
            self._spawn("retention", self._retention_forever())

    async def stop(self) -> None:
        """Stop everything started, newest first (safe to call twice)."""
        if self._server is not None:
            self._server.should_exit = True
        cleanup, self._cleanup = self._cleanup, []
        tasks, self._tasks = self._tasks, {}
        errors: list[BaseException] = []
        stoppers = {"projector": self.projector, "snapshotter": self.snapshotter}
        for step in reversed(cleanup):
            try:
                await step()
            except Exception as exc:  # keep stopping the rest; raised below
                errors.append(exc)
        for name, task in tasks.items():
            stopper = stoppers.get(name)
            if stopper is not None:
                stopper.request_stop()
            elif name != "api":
                task.cancel()
        for name, task in tasks.items():
            try:
                await asyncio.wait_for(task, 15)
            except (asyncio.CancelledError, TimeoutError):
                pass
            except Exception as exc:
                errors.append(exc)
                log.error("%s failed while stopping: %r", name, exc)
        for component in (self.projector, self.snapshotter):
            if component is not None:
                await component.stop()
        self.projector = self.snapshotter = None
        pool, self._pool_to_close = self._pool_to_close, None
        if pool is not None:
            await close_pool(pool)
        if errors:
            raise errors[0]

    async def wait(self) -> None:
        """Until a background component ends (which raises its error) or cancelled."""
        while True:
            for name, task in self._tasks.items():
                if task.done():
                    if task.cancelled():
                        raise RuntimeError(f"{name} was cancelled")
                    task.result()
                    raise RuntimeError(f"{name} stopped")
            if self.orchestrator is not None:
                self.orchestrator.check()
            if self.redis is not None:
                await self.redis.wait()
            await asyncio.sleep(0.5)

    def state_manager(self) -> ConfiguredStateManager:
        """A ``StateManager`` with ``synchronization``'s strategy and conflict resolution."""
        return ConfiguredStateManager(
            self.runtime,
            strategy=self.plan.consistency,
            conflict_resolution=self.plan.conflict_resolution,
        )

    # --- components --------------------------------------------------------------------

    def _spawn(self, name: str, work: Awaitable[Any]) -> None:
        self._tasks[name] = asyncio.ensure_future(work)

    async def _close_metrics(self) -> None:
        server, self.metrics = self.metrics, None
        if server is not None:
            server.close()

    async def _unconfigure(self) -> None:
        try:
            current = current_runtime()
        except NotConfigured:
            current = None
        if current is self.runtime:  # only undo our own setting
            state_runtime_configure(None)

    async def _start_redis(self, runtime: StateRuntime) -> None:
        backend = self.settings.backend()
        if not isinstance(backend, RedisBackend):
            return
        assert self.pool is not None
        plan = self.plan
        self.redis = side = await start_redis_read_side(
            backend,
            self.endpoints,
            projection=plan.projection,
            pool=self.pool,
            bootstrap=plan.bootstrap,
            run_projector=self.options.run_projector,
            fallback=runtime.read_model,
            security=plan.kafka_security,
            connect_timeout=plan.connect_timeout,
        )
        self._cleanup.append(self._stop_redis)
        runtime.state_reader = side.reader

    async def _stop_redis(self) -> None:
        side, self.redis = self.redis, None
        if side is not None:
            await side.stop()

    async def _start_projector(self) -> None:
        plan = self.plan
        self.projector = projector = Projector(
            plan.projection,
            plan.dsn,
            plan.bootstrap,
            supports_idempotence=plan.supports_idempotence,
            pool=self.pool,
            security=plan.kafka_security,
        )
        await projector.start()
        self._spawn("projector", projector.run())
        feed = feed_for(
            plan.bootstrap,
            plan.topics,
            codec_for(plan.projection.limits),
            name=plan.projection.name,
            security=plan.kafka_security,
        )
        if feed is not None:  # the seed's task_events topic, derived beside the read models
            self._spawn("task feed", feed.run())

    async def _start_snapshotter(self) -> None:
        from orchestrator.snapshots import Snapshotter, SnapshotterSettings

        plan, sp = self.plan, self.plan.snapshots
        codec = sp.codec()  # its keys are checked in _start
        self.snapshot_store = store = snapshot_store(self.plan, self.endpoints)
        if not sp.lifecycle.empty:
            report = await store.apply_lifecycle(sp.lifecycle)
            log.info("snapshot store lifecycle: %s", report.detail)
        settings = SnapshotterSettings(
            name=f"{plan.projection.name}_snapshotter",
            topic=plan.topics.pipeline.name,
            tables=plan.table_names,
            events_table=plan.projection.tables.execution_events,
            archive_projection=plan.projection.name,
        )
        self.snapshotter = snapshotter = Snapshotter(
            settings,
            dsn=plan.dsn,
            bootstrap=plan.bootstrap,
            security=plan.kafka_security,
            store=store,
            codec=codec,
            event_codec=codec_for(plan.projection.limits),
            policy=sp.policy,
            layout=sp.layout,
            pool=self.pool,
        )
        await snapshotter.start()
        self._spawn("snapshotter", snapshotter.run())

    async def _start_api(self) -> None:
        plan, opts = self.plan, self.options
        from orchestrator.app._api_server import api_server  # FastAPI: only when served

        assert self.runtime is not None  # the timeline's states from the runtime's snapshots
        self._server = server = api_server(
            plan,
            redis_store=None if self.redis is None else self.redis.reader.store,
            pool=self.pool,
            bases=self.runtime.history.snapshots,
            host=opts.api_host,
            port=opts.api_port or 0,
        )
        self._spawn("api", server.serve())
        while not server.started:
            task = self._tasks["api"]
            if task.done():
                task.result()
                raise RuntimeError("the query API did not start")
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        self.api_url = f"http://{opts.api_host}:{port}"

    async def _seed_shared_state(self) -> None:
        seed = self.settings.shared_state
        if seed is None or self.runtime is None:
            return
        for name, var in seed.variables.items():
            try:
                await self.runtime.shared.execute(
                    SetVariable(
                        seed.namespace,
                        name,
                        var.value,
                        type=var.type,
                        expected_version=0,
                        immutable=var.immutable,
                        updated_by=var.updated_by or "configuration",
                    )
                )
            except StaleExpectedVersion:
                pass  # set before (by an earlier start): the log's value stands

    async def _retention_forever(self) -> None:
        assert self.pool is not None and self.snapshot_store is not None
        await retention_forever(
            self.pool,
            self.plan,
            self.snapshot_store,
            blobs=blob_store(self.plan, self.endpoints),
            codec=None if self.snapshotter is None else self.snapshotter.codec,
            every=self.options.prune_every,
        )
