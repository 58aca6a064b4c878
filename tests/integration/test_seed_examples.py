"""Every Python example of the seed document, run as written against the real stack.

Each test holds the seed's code verbatim between ``# --- seed ---`` markers, and around
it the minimum of glue: imports, and the helpers the seed leaves undefined
(``process_part_1``, ``analyze_failure``, ``get_node_id``, ...). The stack is one
``App`` built from the seed's own YAML blocks (automatic checkpointing, automatic
recovery, state compression) with fresh topics, a fresh database and a short retry
delay, so the examples run in seconds.
"""

# The seed's code is copied verbatim: its imports stand where it wrote them, its classes
# keep their list attributes, and `ruff format` leaves it alone (fmt: off/on).
# ruff: noqa: E402, I001, F811

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from _databases import fresh_database
from _worker import plan_on

from orchestrator.commands.decide import (
    CreateExecution,
    StartTask,
    StartValidation,
    SucceedValidation,
)
from orchestrator.events.errors import InvalidTransition
from orchestrator.app import App, AppOptions
from orchestrator.config import load_config
from orchestrator.devstack import ServiceEndpoints
from orchestrator.runtime import Pipeline, PipelineFailed, TaskError, current_context
from orchestrator.runtime import Orchestrator  # the seed: `from orchestrator import Orchestrator`
from orchestrator.state import (
    DistributedLock,
    LeaderElection,
    RecoveryError,
    StateManager,
    checkpoint,
    task_scope,
)
from orchestrator.snapshots import KEYS_ENV, generate_key

SEED = Path(__file__).parents[2] / "examples" / "seed"
logger = logging.getLogger(__name__)  # the seed's examples log through `logger`


@pytest.fixture(scope="module")
async def app(
    services: ServiceEndpoints, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[App]:
    """The stack, configured by the seed's YAML blocks 08, 09 and 13 (merged)."""
    config: dict[str, Any] = {}
    for name in ("08_automatic_checkpointing", "09_automatic_recovery", "13_state_compression"):
        config.update(yaml.safe_load((SEED / f"{name}.yaml").read_text()))
    config["recovery"]["strategies"]["task_failure"]["base_delay"] = 0.05
    prefix = f"test-seed-{uuid.uuid4().hex[:8]}"
    data = tmp_path_factory.mktemp("seed")
    config["state_management"] = {
        "event_store": {
            "topics": {
                "pipeline_events": f"{prefix}.pipeline.events",
                "shared_events": f"{prefix}.shared.events",
            },
            "partitions": 2,
        },
        "snapshots": {"enabled": True, "frequency": 100, "storage": f"file://{data}/snapshots"},
    }
    config["distributed"] = {"synchronization": {"strategy": "strong"}}
    settings = load_config(yaml.safe_dump(config)).settings
    os.environ[KEYS_ENV] = f"k1:{generate_key()}"  # checkpointing.storage.encrypt: true
    try:
        async with fresh_database(services.database_url or "", "seed", migrated=False) as dsn:
            plan = plan_on(
                services, settings, dsn=dsn, node_id="seed-node", data_dir=data, max_replication=1
            )
            async with App(plan, settings, AppOptions(), endpoints=services) as running:
                yield running
    finally:
        os.environ.pop(KEYS_ENV, None)


# --- Manual Checkpointing -------------------------------------------------------------

# --- seed ---
# fmt: off
from orchestrator.state import checkpoint

class CustomTask:
    async def execute(self, context):
        # Process part 1
        result_1 = await self.process_part_1(context.data)

        # Create checkpoint
        await checkpoint.save(
            name="after_part_1",
            data={
                "result_1": result_1,
                "progress": 0.33
            },
            metadata={
                "timestamp": datetime.now(),
                "memory_usage": get_memory_usage()
            }
        )

        # Process part 2
        result_2 = await self.process_part_2(result_1)

        # Create another checkpoint
        await checkpoint.save(
            name="after_part_2",
            data={
                "result_1": result_1,
                "result_2": result_2,
                "progress": 0.66
            }
        )

        # Final processing
        final_result = await self.process_final(result_2)
        return final_result
# fmt: on
# --- end of seed ---


def get_memory_usage() -> str:
    return "512MB"


class GluedCustomTask(CustomTask):
    """The helpers the seed leaves undefined; part 2 fails once (a flaky model call)."""

    def __init__(self) -> None:
        self.part_1_runs = 0
        self.part_2_failures = 1

    async def process_part_1(self, data: dict[str, Any]) -> dict[str, Any]:
        resumed = current_context()
        if resumed is not None and resumed.last_checkpoint:  # resume after part 1
            return resumed.last_checkpoint["result_1"]  # type: ignore[no-any-return]
        self.part_1_runs += 1
        return {"documents": len(data["documents"])}

    async def process_part_2(self, result_1: dict[str, Any]) -> dict[str, Any]:
        if self.part_2_failures:
            self.part_2_failures -= 1
            raise ConnectionError("embedding service unavailable")
        return {"embedded": result_1["documents"] * 2}

    async def process_final(self, result_2: dict[str, Any]) -> dict[str, Any]:
        return {"summary": f"{result_2['embedded']} vectors"}


async def test_manual_checkpointing_custom_task_resumes_after_part_1(app: App) -> None:
    task = GluedCustomTask()
    pipeline = Pipeline("custom_pipeline")
    pipeline.add(task, task_id="custom")

    result = await Orchestrator().run_pipeline(pipeline, {"input_data": {"documents": [1, 2, 3]}})

    assert result.result == {"summary": "6 vectors"}
    assert result.attempts == {"custom": 2}
    assert task.part_1_runs == 1, "attempt 2 must resume after part 1, not redo it"
    saved = await checkpoint.list(pipeline_id="custom_pipeline", execution_id=result.execution_id)
    assert [c.name for c in saved] == ["after_part_1", "after_part_1", "after_part_2"]
    assert saved[0].progress == 0.33 and saved[-1].progress == 0.66
    assert saved[0].metadata["memory_usage"] == "512MB"
    datetime.fromisoformat(saved[0].metadata["timestamp"])
    restored = await checkpoint.restore(checkpoint_id=saved[-1].id)
    assert restored.data == {
        "result_1": {"documents": 3},
        "result_2": {"embedded": 6},
        "progress": 0.66,
    }


# --- Checkpoint Recovery --------------------------------------------------------------


def research_pipeline(outage: dict[str, bool], seen: list[Any]) -> Pipeline:
    pipeline = Pipeline("research_pipeline")

    @pipeline.task()
    async def prepare_query(context: Any) -> str:
        seen.append(("prepare_query", context.attempt))
        return "quantum computing applications"

    @pipeline.task(depends_on=["prepare_query"])
    async def web_search(prepare_query: str, context: Any) -> list[str]:
        seen.append(("web_search", context.attempt, context.last_checkpoint))
        pages = list((context.last_checkpoint or {}).get("pages", []))
        while len(pages) < 3:
            if outage["search"] and len(pages) == 1:
                raise ConnectionError("search engine down")
            pages.append(f"{prepare_query} #{len(pages) + 1}")
            await checkpoint.save(name=f"page_{len(pages)}", data={"pages": pages})
        return pages

    return pipeline


async def test_checkpoint_recovery_restores_and_resumes_from_the_latest_checkpoint(
    app: App,
) -> None:
    outage, seen = {"search": True}, []
    pipeline = research_pipeline(outage, seen)
    with pytest.raises(PipelineFailed):
        await Orchestrator().run_pipeline(pipeline, execution_id="exec_12345")
    outage["search"] = False

    # --- seed ---
    # fmt: off
    from orchestrator.state import checkpoint

    orchestrator = Orchestrator()

    # List available checkpoints
    checkpoints = await checkpoint.list(
        pipeline_id="research_pipeline",
        execution_id="exec_12345"
    )

    # Restore from specific checkpoint
    restored_state = await checkpoint.restore(
        checkpoint_id=checkpoints[-1].id  # Latest checkpoint
    )

    # Resume pipeline from checkpoint
    result = await orchestrator.resume_pipeline(
        pipeline_id="research_pipeline",
        from_checkpoint=restored_state
    )
    # fmt: on
    # --- end of seed ---

    assert restored_state.name == "page_1" and restored_state.state.status == "running"
    assert result.status == "completed" and result.execution_id == "exec_12345"
    assert result.result == [f"quantum computing applications #{n}" for n in (1, 2, 3)]
    assert [s for s in seen if s[0] == "prepare_query"] == [("prepare_query", 1)]
    assert seen[-1] == ("web_search", 4, {"pages": ["quantum computing applications #1"]})


# --- Manual Recovery ------------------------------------------------------------------

# --- seed ---
# fmt: off
from orchestrator.state import StateManager, RecoveryError

class PipelineRecovery:
    def __init__(self, state_manager: StateManager):
        self.state_manager = state_manager

    async def recover_pipeline(self, execution_id: str):
        try:
            # Get last known state
            state = await self.state_manager.get_pipeline_state(execution_id)

            if state.status == "failed":
                # Analyze failure
                failure_analysis = await self.analyze_failure(state)

                if failure_analysis.recoverable:
                    # Restore from checkpoint
                    checkpoint = await self.find_best_checkpoint(state)
                    await self.restore_from_checkpoint(checkpoint)

                    # Resume execution
                    return await self.resume_execution(
                        execution_id,
                        skip_completed=True
                    )
                else:
                    raise RecoveryError(
                        f"Pipeline {execution_id} is not recoverable: "
                        f"{failure_analysis.reason}"
                    )

        except Exception as e:
            logger.error(f"Recovery failed: {e}")
            raise
# fmt: on
# --- end of seed ---


class Analysis:
    def __init__(self, recoverable: bool, reason: str) -> None:
        self.recoverable = recoverable
        self.reason = reason


class GluedPipelineRecovery(PipelineRecovery):
    """The seed's undefined helpers, on the public API."""

    restored: Any = None

    async def analyze_failure(self, state: Any) -> Analysis:
        failed = [t for t in state.tasks.values() if t.status == "failed"]
        final = [t for t in failed if t.retryable is False]
        if final:
            return Analysis(False, f"task {final[0].task_id}: {final[0].error}")
        return Analysis(True, "retryable")

    async def find_best_checkpoint(self, state: Any) -> Any:
        saved = await checkpoint.list(execution_id=state.execution_id)
        return saved[-1] if saved else None

    async def restore_from_checkpoint(self, found: Any) -> None:
        self.restored = None if found is None else await checkpoint.restore(checkpoint_id=found.id)

    async def resume_execution(self, execution_id: str, skip_completed: bool = True) -> Any:
        assert skip_completed  # what resume_pipeline does
        return await Orchestrator().resume_pipeline(
            execution_id=execution_id, from_checkpoint=self.restored
        )


async def test_manual_recovery_resumes_a_recoverable_failure_and_refuses_the_others(
    app: App,
) -> None:
    outage, seen = {"search": True}, []
    with pytest.raises(PipelineFailed) as failed:
        await Orchestrator().run_pipeline(research_pipeline(outage, seen))
    outage["search"] = False
    recovery = GluedPipelineRecovery(app.state_manager())  # synchronization: strong

    result = await recovery.recover_pipeline(failed.value.execution_id)

    assert result.status == "completed" and len(result.result) == 3

    broken = Pipeline("broken_pipeline")

    @broken.task()
    async def parse() -> None:
        raise TaskError("the input is not JSON", retryable=False)

    with pytest.raises(PipelineFailed) as failed:
        await Orchestrator().run_pipeline(broken)
    with pytest.raises(RecoveryError, match="is not recoverable: task parse: TaskError"):
        await recovery.recover_pipeline(failed.value.execution_id)


# --- Distributed Locks ----------------------------------------------------------------

# --- seed ---
# fmt: off
from orchestrator.state import DistributedLock

async def process_exclusive_resource(resource_id: str):
    lock = DistributedLock(
        name=f"resource_{resource_id}",
        ttl=300,  # 5 minutes
        retry_interval=1.0
    )

    async with lock:
        # Exclusive access to resource
        result = await process_resource(resource_id)

        # Lock automatically released
        return result
# fmt: on
# --- end of seed ---

inside: list[str] = []
overlaps: list[int] = []


async def process_resource(resource_id: str) -> str:
    inside.append(resource_id)
    overlaps.append(len(inside))
    await asyncio.sleep(0.3)
    inside.remove(resource_id)
    return f"processed {resource_id}"


async def test_distributed_lock_gives_exclusive_access(app: App) -> None:
    results = await asyncio.gather(
        process_exclusive_resource("gpu-0"), process_exclusive_resource("gpu-0")
    )
    assert results == ["processed gpu-0"] * 2
    assert overlaps == [1, 1], "two holders were inside the lock at once"


# --- Leader Election ------------------------------------------------------------------

# --- seed ---
# fmt: off
from orchestrator.state import LeaderElection

class PipelineCoordinator:
    def __init__(self):
        self.election = LeaderElection(
            name="pipeline_coordinator",
            node_id=get_node_id(),
            ttl=30
        )

    async def run(self):
        while True:
            if await self.election.is_leader():
                # Perform leader duties
                await self.coordinate_pipelines()
                await self.balance_workload()
            else:
                # Follow the leader
                await self.sync_with_leader()

            await asyncio.sleep(10)
# fmt: on
# --- end of seed ---

_node_ids = (f"coordinator-{n}" for n in itertools.count(1))


def get_node_id() -> str:
    return next(_node_ids)


class GluedCoordinator(PipelineCoordinator):
    def __init__(self) -> None:
        super().__init__()
        self.duties: list[str] = []
        self.acted = asyncio.Event()

    async def coordinate_pipelines(self) -> None:
        self.duties.append("coordinate")

    async def balance_workload(self) -> None:
        self.duties.append("balance")
        self.acted.set()

    async def sync_with_leader(self) -> None:
        self.duties.append(f"follow {await self.election.leader()}")
        self.acted.set()


async def test_leader_election_one_coordinator_leads_the_other_follows(app: App) -> None:
    first, second = GluedCoordinator(), GluedCoordinator()
    runs = [asyncio.create_task(c.run()) for c in (first, second)]
    try:
        async with asyncio.timeout(30):
            await asyncio.gather(first.acted.wait(), second.acted.wait())
    finally:  # the seed's loop never ends: bounded here, after its first round
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
    leader, follower = (first, second) if first.duties[0] == "coordinate" else (second, first)
    assert leader.duties == ["coordinate", "balance"]
    assert follower.duties == [f"follow {leader.election.node_id}"]
    await leader.election.resign()


# --- State Machines -------------------------------------------------------------------

# --- seed --- in tests/seed_machine.py (the unit test of StateMachine runs it too)
from tests.seed_machine import PipelineStateMachine, RecordedHooks


class GluedStateMachine(RecordedHooks, PipelineStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.calls = []

    async def create_checkpoint(self) -> None:
        await super().create_checkpoint()
        await checkpoint.save(
            name=f"machine_left_running_{len(self.calls)}", data={"state": self.state}
        )


async def test_state_machine_runs_its_hooks_and_checkpoints_inside_a_task(app: App) -> None:
    pipeline = Pipeline("machine_pipeline")
    machine = GluedStateMachine()

    @pipeline.task()
    async def drive() -> str:
        await machine.start()
        await machine.validation_success()
        await machine.pause()
        with pytest.raises(InvalidTransition):
            await machine.finish()  # not from paused
        await machine.resume()
        await machine.finish()
        return machine.state

    result = await Orchestrator().run_pipeline(pipeline)

    assert result.result == "completed"
    assert machine.calls == [
        "start_monitoring",
        "stop_monitoring",
        "create_checkpoint",
        "start_monitoring",
        "stop_monitoring",
        "create_checkpoint",
    ]
    saved = await checkpoint.list(execution_id=result.execution_id)
    assert [c.name for c in saved] == ["machine_left_running_3", "machine_left_running_6"]
    assert [c.task_id for c in saved] == ["drive", "drive"]


# --- Batch Operations -----------------------------------------------------------------


async def test_batch_state_manager_sends_all_updates_in_one_operation(app: App) -> None:
    assert app.runtime is not None and app.log is not None
    shards = [f"shard_{n}" for n in range(10)]
    writer = await app.runtime.create_execution(
        CreateExecution(
            execution_id=f"exec_batch_{uuid.uuid4().hex[:6]}", pipeline_id="fan_out", tasks=shards
        )
    )
    await writer.execute_many(
        [StartValidation(), SucceedValidation(), *(StartTask(task_id=s) for s in shards)]
    )
    results = {s: {"rows": n * 10} for n, s in enumerate(shards)}
    before = await app.log.end_offsets(app.plan.topics.pipeline.name)

    with task_scope(writer, "shard_0"):
        # --- seed ---
        # fmt: off
        from orchestrator.state import BatchStateManager

        batch_manager = BatchStateManager(
            batch_size=100,
            flush_interval=1.0  # seconds
        )

        # Batch multiple state updates
        async with batch_manager.batch() as batch:
            for task_id, result in results.items():
                await batch.update_task_state(
                    task_id=task_id,
                    status="completed",
                    outputs=result
                )

        # All updates sent in single operation
        # fmt: on
        # --- end of seed ---

    assert len(batch.positions) == 10
    offsets = [p.offset for p in batch.positions]
    assert offsets == list(range(offsets[0], offsets[0] + 10)), "not one contiguous append"
    after = await app.log.end_offsets(app.plan.topics.pipeline.name)
    assert sum(after.values()) - sum(before.values()) == 10
    state = await StateManager().get_pipeline_state(
        writer.execution_id, consistency="strong", position=batch.positions[-1]
    )
    assert {t: s.status for t, s in state.tasks.items()} == dict.fromkeys(shards, "completed")
    assert state.tasks["shard_7"].outputs == {"rows": 70}
    await app.runtime.release_execution(writer.execution_id)
