"""``AsyncKafkaSaver``: LangGraph checkpoints and pending writes as events of this product.

Each ``(thread_id, checkpoint_ns)`` is one execution (see ``_codec``), written by this
process's fenced :class:`~orchestrator.commands.ExecutionWriter` (lease, epoch,
ownership takeover): ``aput`` appends ``CheckpointSaved``, ``aput_writes``
``CheckpointWritesSaved``, and deletes, prunes and ``adelete_for_runs`` append
``CheckpointsDeleted`` (history keeps every event: ``replay``, ``check`` and the
timeline still see them). Reads wait until the read model has applied this process's
own writes, then query it (``_reads``). A second process that resumes a thread takes
the execution over; the first one's later writes are refused (``LeaseLost``) or, if
already on their way, dropped by every fold as ``stale_epoch``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from orchestrator.app import App
from orchestrator.commands import (
    Command,
    CreateExecution,
    DeleteCheckpoints,
    ExecutionExists,
    ExecutionNotOwned,
    ExecutionWriter,
    SaveCheckpoint,
    SaveCheckpointWrites,
    StartValidation,
    SucceedValidation,
)
from orchestrator.events import Position
from orchestrator.langgraph import _codec as codec
from orchestrator.langgraph import _wiring
from orchestrator.langgraph._reads import Listed, Saved, ThreadReader
from orchestrator.langgraph._sync import BlockingCalls
from orchestrator.projections import CheckpointQuery
from orchestrator.state import StateRuntime


class AsyncKafkaSaver(BlockingCalls, BaseCheckpointSaver[str]):
    """A LangGraph checkpointer on the event log; ``async with AsyncKafkaSaver.from_env()``
    or ``AsyncKafkaSaver(runtime)`` on a runtime you started."""

    def __init__(
        self,
        runtime: StateRuntime | None = None,
        *,
        serde: SerializerProtocol | None = None,
        lease_wait: float | None = None,
        app: App | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self._runtime = runtime
        self._app = app
        self._lease_wait = lease_wait
        self._opening: dict[str, asyncio.Lock] = {}

    # --- construction ------------------------------------------------------------------

    @classmethod
    def from_env(cls, **options: Any) -> AsyncKafkaSaver:
        """Servers from KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL and S3_ENDPOINT_URL (what
        ``orchestrator-state services up`` prints); connects in ``async with``.

        Options: ``node_id``, ``data_dir`` (blobs without S3), ``run_projector``
        (default True: this process keeps the read model current), ``serde``,
        ``lease_wait`` (seconds to wait for a crashed owner's lease; default its ttl).
        """
        return cls._planned(None, options)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str], **options: Any) -> AsyncKafkaSaver:
        """As :meth:`from_env`, with the settings (topics, backend, leases) of ``path``."""
        return cls._planned(path, options)

    @classmethod
    def _planned(
        cls, path: str | os.PathLike[str] | None, options: dict[str, Any]
    ) -> AsyncKafkaSaver:
        serde, lease_wait = options.pop("serde", None), options.pop("lease_wait", None)
        app = _wiring.open_app(_wiring.connection(path, **options))
        return cls(serde=serde, lease_wait=lease_wait, app=app)

    async def __aenter__(self) -> AsyncKafkaSaver:
        self._loop = asyncio.get_running_loop()  # where the blocking calls run (_sync)
        if self._app is not None and self._runtime is None:
            await self._app.start()  # pool, topics ensured, migrations, log, projector
            self._runtime = self._app.runtime
        await self._catch_up_with_log()
        return self

    async def _catch_up_with_log(self) -> None:
        """Reads wait for everything in the log now (written by any process, e.g. one
        that crashed), so a thread resumed here starts from its true last checkpoint."""
        rt = self.runtime
        topic = rt.log.topics.pipeline.name
        ends = await rt.log.end_offsets(topic)
        rt.record(Position(topic, p, end - 1) for p, end in ends.items() if end > 0)

    async def __aexit__(self, *exc_info: object) -> None:
        if self._app is not None:
            await self._app.stop()
            self._runtime = None
        elif self._runtime is not None:
            for eid in list(self._runtime.writers):
                await self._runtime.release_execution(eid)

    async def setup(self) -> None:
        """Create what a fresh server lacks: topics and tables (done on connect, again
        here, idempotently) and the blob bucket when blobs go to S3."""
        if self._app is not None:
            await _wiring.ensure_bucket(self._app)

    @property
    def runtime(self) -> StateRuntime:
        if self._runtime is None:
            raise RuntimeError("AsyncKafkaSaver is not connected: use `async with` first")
        return self._runtime

    # --- writing -----------------------------------------------------------------------

    async def _writer(self, eid: str, thread_id: str, ns: str) -> ExecutionWriter:
        """This process's writer of ``eid``: created, or taken over (fenced) if it exists."""
        rt = self.runtime
        async with self._opening.setdefault(eid, asyncio.Lock()):
            writer = rt.writers.get(eid)
            if writer is not None and writer.lost is None:
                return writer
            if writer is not None:
                raise writer.lost  # type: ignore[misc]  # another process owns the thread now
            if await rt.read_model.load_execution(eid) is None:
                create = CreateExecution(
                    execution_id=eid,
                    pipeline_id=codec.pipeline_id(thread_id),
                    input_data={"thread_id": thread_id, "checkpoint_ns": ns},
                )
                try:
                    writer = await rt.create_execution(create)
                except (ExecutionExists, ExecutionNotOwned):
                    pass  # created elsewhere, not yet in our read model: take it over
                else:
                    rt.record(await writer.execute_many([StartValidation(), SucceedValidation()]))
                    return writer
            wait = self._lease_wait
            if wait is None:
                wait = rt.settings.writer.lease_ttl + 1.0
            return await rt.open_execution(eid, wait=wait)

    async def _execute(self, eid: str, thread_id: str, ns: str, commands: list[Command]) -> None:
        writer = await self._writer(eid, thread_id, ns)
        self.runtime.record(await writer.execute_many(commands))

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        conf = config["configurable"]
        thread_id, ns = str(conf["thread_id"]), str(conf.get("checkpoint_ns", ""))
        eid = codec.execution_id(thread_id, ns)
        full = get_checkpoint_metadata(config, metadata)
        data = codec.checkpoint_data(
            self.serde,
            thread_id=thread_id,
            checkpoint_ns=ns,
            checkpoint=checkpoint,
            metadata=full,
            parent_id=conf.get("checkpoint_id"),
        )
        command = SaveCheckpoint(
            name=checkpoint["id"],
            checkpoint_id=codec.product_checkpoint_id(eid, checkpoint["id"]),
            data=data,
            metadata=codec.filterable(full),
        )
        await self._execute(eid, thread_id, ns, [command])
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        conf = config["configurable"]
        thread_id, ns = str(conf["thread_id"]), str(conf.get("checkpoint_ns", ""))
        eid = codec.execution_id(thread_id, ns)
        indexed = [(WRITES_IDX_MAP.get(ch, i), ch, v) for i, (ch, v) in enumerate(writes)]
        command = SaveCheckpointWrites(
            checkpoint_id=codec.product_checkpoint_id(eid, conf["checkpoint_id"]),
            task_id=task_id,
            task_path=task_path or None,
            writes=codec.writes_data(self.serde, indexed),
        )
        await self._execute(eid, thread_id, ns, [command])

    # --- reading -----------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        conf = config["configurable"]
        thread_id, ns = str(conf["thread_id"]), str(conf.get("checkpoint_ns", ""))
        reader = ThreadReader(self.runtime)
        await reader.catch_up()
        found = await reader.checkpoints(
            CheckpointQuery(
                execution_ids=[codec.execution_id(thread_id, ns)],
                name=get_checkpoint_id(config),
                limit=1,
            )
        )
        if not found:
            return None
        return (await self._tuples(reader, found))[0]

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        reader = ThreadReader(self.runtime)
        await reader.catch_up()
        conf = (config or {}).get("configurable") or {}
        execution_ids = pipeline_id = None
        if "thread_id" in conf:
            thread_id = str(conf["thread_id"])
            if "checkpoint_ns" in conf:
                execution_ids = [codec.execution_id(thread_id, str(conf["checkpoint_ns"]))]
            else:
                pipeline_id = codec.pipeline_id(thread_id)
        found = await reader.checkpoints(
            CheckpointQuery(
                execution_ids=execution_ids,
                pipeline_id=pipeline_id,
                name=conf.get("checkpoint_id"),
                before=None if before is None else get_checkpoint_id(before),
                metadata=filter or None,
                limit=limit,
            )
        )
        for item in await self._tuples(reader, found):
            yield item

    async def _tuples(self, reader: ThreadReader, found: list[Saved]) -> list[CheckpointTuple]:
        writes = await reader.writes(found)
        out: list[CheckpointTuple] = []
        for saved in found:
            d = saved.data
            conf = {"thread_id": d["thread_id"], "checkpoint_ns": d["checkpoint_ns"]}
            parent = d.get("parent_checkpoint_id")
            out.append(
                CheckpointTuple(
                    config={"configurable": {**conf, "checkpoint_id": d["checkpoint_id"]}},
                    checkpoint=codec.unpack(self.serde, d["checkpoint"]),
                    metadata=codec.unpack(self.serde, d["metadata"]),
                    parent_config=None
                    if parent is None
                    else {"configurable": {**conf, "checkpoint_id": parent}},
                    pending_writes=self._pending(writes.get(saved.checkpoint_id, [])),
                )
            )
        return out

    def _pending(self, events: list[tuple[Any, Any]]) -> list[tuple[str, str, Any]]:
        """LangGraph's rules: a regular write (task, idx) is kept once (the first); a
        special one (error, interrupt...) is replaced by a later one."""
        kept: dict[tuple[str, int], tuple[str, str, Any]] = {}
        for payload, value in events:
            for idx, channel, packed in value or []:
                key = (payload.task_id, idx)
                if idx >= 0 and key in kept:
                    continue
                kept[key] = (payload.task_id, channel, codec.unpack(self.serde, packed))
        return list(kept.values())

    # --- deleting and copying ----------------------------------------------------------

    async def _withdraw(self, listed: list[Listed], reason: str) -> None:
        by_execution: dict[str, list[str]] = {}
        for item in listed:
            by_execution.setdefault(item.execution_id, []).append(item.checkpoint_id)
        for eid, ids in by_execution.items():
            thread_id = eid.removeprefix(codec.PIPELINE_PREFIX)
            await self._execute(
                eid, thread_id, "", [DeleteCheckpoints(checkpoint_ids=ids, reason=reason)]
            )

    async def _listed(self, **query: Any) -> list[Listed]:
        reader = ThreadReader(self.runtime)
        await reader.catch_up()
        return await reader.listed(**query)

    async def adelete_thread(self, thread_id: str) -> None:
        listed = await self._listed(pipeline_ids=[codec.pipeline_id(str(thread_id))])
        await self._withdraw(listed, "delete_thread")

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        if run_ids:
            await self._withdraw(await self._listed(run_ids=list(run_ids)), "delete_for_runs")

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}: keep_latest or delete")
        if not thread_ids:
            return
        listed = await self._listed(pipeline_ids=[codec.pipeline_id(str(t)) for t in thread_ids])
        if strategy == "keep_latest":
            latest: dict[str, Listed] = {}
            for item in listed:
                if item.execution_id not in latest or item.name > latest[item.execution_id].name:
                    latest[item.execution_id] = item
            listed = [i for i in listed if latest[i.execution_id] is not i]
        await self._withdraw(listed, f"prune {strategy}")

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        reader = ThreadReader(self.runtime)
        await reader.catch_up()
        listed = await reader.listed(pipeline_ids=[codec.pipeline_id(str(source_thread_id))])
        names = {(i.execution_id, i.name): i for i in listed}
        saved = [
            s
            for eid in dict.fromkeys(i.execution_id for i in listed)
            for s in reversed(await reader.checkpoints(CheckpointQuery(execution_ids=[eid])))
        ]
        writes = await reader.writes(saved)
        by_target: dict[tuple[str, str], list[Command]] = {}
        for s in saved:
            ns, target = s.data["checkpoint_ns"], str(target_thread_id)
            eid = codec.execution_id(target, ns)
            commands = by_target.setdefault((target, ns), [])
            commands.append(
                SaveCheckpoint(
                    name=s.name,
                    checkpoint_id=codec.product_checkpoint_id(eid, s.name),
                    data={**s.data, "thread_id": target},
                    metadata=names[(s.execution_id, s.name)].metadata,
                )
            )
            for payload, value in writes.get(s.checkpoint_id, []):
                commands.append(
                    SaveCheckpointWrites(
                        checkpoint_id=codec.product_checkpoint_id(eid, s.name),
                        task_id=payload.task_id,
                        task_path=payload.task_path,
                        writes=value,
                    )
                )
        for (target, ns), commands in by_target.items():
            await self._execute(codec.execution_id(target, ns), target, ns, commands)
