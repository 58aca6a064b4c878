"""``orchestrator.connect()``: the one way in from Python.

    async with orchestrator.connect(config="orchestrator.yaml") as state:
        result = await state.run(pipeline, {"input_data": {...}})

It reads the configuration file (or none: the defaults), the servers from the
environment (``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``, ``S3_ENDPOINT_URL``, ``S3_BUCKET``
and the ``AWS_*`` credentials: what ``orchestrator-state services up`` prints), then
builds the process's stack with the same wiring as every command (``plan_app`` →
``App``): one asyncpg pool, the topics created or verified
(``orchestrator.app.topics``), the migrations applied, the event log, the projection
processor and snapshotter, and the ``Orchestrator`` with its recovery supervisor. The
seed's module-level API (``checkpoint.save``, ``StateManager()``,
``DistributedLock(...)``) uses this connection until it closes.

A server that does not answer is a ``ServerUnreachable`` naming it and its address,
raised within ``connect_timeout`` seconds per connection attempt.

``connect(backend="memory")`` (or ``state_management.backend: "memory"`` in the file)
needs no server at all: the same API over an in-process log, read models and leases
(``orchestrator.app.memory``), for users' own unit tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.app.app import App
from orchestrator.app.errors import PlanError
from orchestrator.app.manager import ConfiguredStateManager
from orchestrator.app.memory import MemoryStack
from orchestrator.app.options import AppOptions
from orchestrator.app.plan import AppPlan, plan_app
from orchestrator.app.stores import ensure_buckets, plan_buckets, with_s3_storage
from orchestrator.commands import DistributedLock, LeaderElection, node_label
from orchestrator.config import Settings, load_config, load_config_file
from orchestrator.debug import StateDebugger
from orchestrator.devstack import ServiceEndpoints
from orchestrator.events import (
    OrchestratorStateError,
    Resource,
    ServerUnreachable,
    configure_from_env,
)
from orchestrator.runtime import Orchestrator, Pipeline, PipelineResult
from orchestrator.state import MemoryHistory, RestoredCheckpoint, StateRuntime
from orchestrator.state import checkpoint as checkpoint_module

CONFIG_ENV = "ORCHESTRATOR_CONFIG"
DRAIN_S = 5.0


class NotConnected(OrchestratorStateError):
    """``connect()`` was not given what it needs (a server address), or is not open."""


def connect(
    config: str | os.PathLike[str] | Settings | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    node_id: str | None = None,
    pipelines: Sequence[Pipeline] = (),
    run_projector: bool = True,
    run_snapshotter: bool = True,
    supervise: bool = True,
    api_port: int | None = None,
    connect_timeout: float = 10.0,
    backend: str | None = None,
) -> Connection:
    """A connection to the configured servers; use it as ``async with connect(...) as state``.

    ``backend="memory"``: no servers, everything in this process (the file's
    ``state_management.backend: "memory"`` does the same); other backends are chosen in
    the configuration file.

    ``config``: a YAML file with the seed's blocks (default: ``$ORCHESTRATOR_CONFIG``,
    else the defaults), or ``Settings``. ``environ``: where the server addresses come
    from (default ``os.environ``). ``run_projector`` / ``run_snapshotter``: run the
    read-model processor and the snapshotter in this process (leave them on unless
    ``orchestrator-state project`` and ``snapshots run`` run elsewhere); ``supervise``:
    take part in resuming crashed executions; ``api_port``: also serve the query API.
    Tracing turns on here when the standard ``OTEL_*`` variables ask for it.
    """
    configure_from_env()
    return Connection(
        config,
        environ=os.environ if environ is None else environ,
        node_id=node_id,
        options=AppOptions(
            run_projector=run_projector,
            run_snapshotter=run_snapshotter,
            supervise=supervise,
            api_port=api_port,
            pipelines=tuple(pipelines),
        ),
        connect_timeout=connect_timeout,
        backend=backend,
    )


def connect_redis(
    redis_url: str,
    *,
    cluster_mode: bool = False,
    key_prefix: str = "orchestrator:",
    ttl_active: int = 3600,
    ttl_completed: int = 86400,
    environ: Mapping[str, str] | None = None,
    **options: Any,
) -> Connection:
    """``connect()`` with ``state_management.backend: "redis"`` at ``redis_url``: Kafka and
    PostgreSQL from ``environ`` as usual, execution and task state read from Redis."""
    redis_config = {
        "url": redis_url,
        "cluster_mode": cluster_mode,
        "key_prefix": key_prefix,
        "ttl": {"active_states": ttl_active, "completed_states": ttl_completed},
    }
    settings = Settings.model_validate(
        {"state_management": {"backend": "redis", "config": redis_config}}
    )
    return connect(settings, environ=environ, **options)


def _settings(
    config: str | os.PathLike[str] | Settings | None, environ: Mapping[str, str]
) -> Settings:
    if isinstance(config, Settings):
        return config
    path = config if config is not None else environ.get(CONFIG_ENV)
    if path:
        return load_config_file(Path(path), environ).settings
    return load_config("{}", "<environment>", environ).settings


class Connection(Resource):
    """The process's connection (see the module docstring); made by :func:`connect`."""

    def __init__(
        self,
        config: str | os.PathLike[str] | Settings | None,
        *,
        environ: Mapping[str, str],
        node_id: str | None,
        options: AppOptions,
        connect_timeout: float,
        backend: str | None = None,
    ) -> None:
        if backend not in (None, "memory"):
            raise ValueError(
                f"connect(backend={backend!r}): only 'memory' is chosen here; the servers' "
                "backends are chosen by state_management.backend in the configuration file"
            )
        self._backend = backend
        self._config = config
        self._environ = dict(environ)
        self._node_id = node_id
        self._options = options
        self._timeout = connect_timeout
        self._app: App | MemoryStack | None = None
        self.checkpoint = checkpoint_module
        """The seed's ``checkpoint`` module (``save`` / ``list`` / ``restore``)."""

    # --- open / close --------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, apply migrations, create or verify topics, start the runtime."""
        if self._app is not None:
            return
        settings = _settings(self._config, self._environ)
        if self._backend == "memory" or settings.state_management.backend == "memory":
            stack = MemoryStack(settings, self._options, node_id=self._node_id or node_label())
            try:
                await stack.start()
            except BaseException:
                await stack.stop()
                raise
            self._app = stack
            return
        endpoints = ServiceEndpoints.from_env(self._environ)
        settings = with_s3_storage(settings, endpoints)
        try:
            plan = plan_app(
                settings,
                bootstrap=endpoints.kafka_bootstrap,
                dsn=endpoints.database_url,
                node_id=self._node_id or node_label(),
                s3_endpoint=endpoints.s3_endpoint_url,
                supports_idempotence=None
                if "KAFKA_SUPPORTS_IDEMPOTENCE" not in self._environ
                else endpoints.kafka_supports_idempotence,
                connect_timeout=self._timeout,
                environ=self._environ,
            )
        except PlanError as exc:
            raise NotConnected(f"orchestrator.connect: {exc}") from None
        cache = plan.state.cache
        if any(level.type == "redis" for level in cache.levels) and not cache.redis_url:
            raise NotConnected(
                "orchestrator.connect: caching has a redis level: set REDIS_URL "
                "(e.g. redis://127.0.0.1:6379/0)"
            )
        if endpoints.s3_endpoint_url is not None:
            await self._make_buckets(endpoints, plan)
        app = App(plan, settings, self._options, endpoints=endpoints)
        await app.start()
        self._app = app

    async def close(self) -> None:
        """Stop everything :meth:`start` started (the runtime first, then the servers').

        When this process runs the projection processor, it first lets the read model
        apply what this process wrote (at most ``connect_timeout`` seconds), so reads
        made after the ``async with`` block see this block's writes."""
        app, self._app = self._app, None
        if app is None:
            return
        if app.runtime is not None and app.projector is not None:
            # Let the in-process processor apply this process's own writes first, so the
            # read models show how the last run ended (bounded: the log has it anyway).
            with contextlib.suppress(OrchestratorStateError, TimeoutError):
                await app.runtime.wait_for(app.runtime.written(), DRAIN_S)
        await app.stop()

    async def stop(self) -> None:
        """``close()``, under the name ``events.Resource`` (``async with``) calls."""
        await self.close()

    async def _make_buckets(self, endpoints: ServiceEndpoints, plan: AppPlan) -> None:
        buckets = plan_buckets(plan)
        if not buckets:
            return
        from botocore.exceptions import BotoCoreError, ClientError

        s3 = endpoints.s3
        if plan.s3_region:  # the s3 backend's region, over AWS_DEFAULT_REGION
            s3 = dataclasses.replace(s3, region=plan.s3_region)
        client = s3.client()  # short connect/read timeouts, two attempts

        try:
            await asyncio.wait_for(
                asyncio.to_thread(ensure_buckets, client, buckets), self._timeout * 2
            )
        except (TimeoutError, BotoCoreError, ClientError) as exc:
            reason = str(exc) or "no answer within the deadline"
            raise ServerUnreachable("S3", s3.endpoint_url, reason) from exc

    # --- what the connection serves ----------------------------------------------------

    @property
    def memory(self) -> bool:
        """Whether this connection is the in-process memory backend."""
        return isinstance(self._app, MemoryStack)

    @property
    def app(self) -> App | MemoryStack:
        if self._app is None:
            raise NotConnected("orchestrator.connect: not open (use `async with connect(...)`)")
        return self._app

    @property
    def runtime(self) -> StateRuntime:
        runtime = self.app.runtime
        assert runtime is not None
        return runtime

    @property
    def pool(self) -> Any:
        """The process's asyncpg pool (every component below uses it); ``None`` on the
        memory backend."""
        return self.runtime.pool

    @property
    def orchestrator(self) -> Orchestrator:
        orchestrator = self.app.orchestrator
        assert orchestrator is not None
        return orchestrator

    async def run(
        self,
        pipeline: Pipeline,
        context: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
    ) -> PipelineResult:
        """Run ``pipeline`` to its end (``Orchestrator.run_pipeline``)."""
        return await self.orchestrator.run_pipeline(pipeline, context, execution_id=execution_id)

    async def resume(
        self,
        execution_id: str | None = None,
        *,
        pipeline_id: str | None = None,
        from_checkpoint: RestoredCheckpoint | None = None,
    ) -> PipelineResult:
        """Resume an execution: completed tasks keep their outputs, the rest run."""
        return await self.orchestrator.resume_pipeline(
            pipeline_id, from_checkpoint, execution_id=execution_id
        )

    def state_manager(self) -> ConfiguredStateManager:
        """The seed's ``StateManager`` with the configured consistency."""
        return self.app.state_manager()

    def lock(self, name: str, ttl: float = 30.0, **options: Any) -> DistributedLock:
        """A ``DistributedLock`` on this connection's coordination (PostgreSQL or etcd)."""
        return DistributedLock(name, ttl, store=self.runtime.leases, **options)

    def leader_election(self, name: str, ttl: float = 15.0, **options: Any) -> LeaderElection:
        """A ``LeaderElection`` for this node on this connection's coordination."""
        return LeaderElection(name, self.runtime.node_id, ttl, store=self.runtime.leases, **options)

    def debugger(self) -> StateDebugger:
        """The seed's ``StateDebugger`` over this connection's log, archive and snapshots."""
        if isinstance(self.app, MemoryStack):
            assert self.app.read_model is not None
            return StateDebugger(self.runtime, history=MemoryHistory(self.app.read_model))
        return StateDebugger(self.runtime, snapshot_store=self.app.snapshot_store)
