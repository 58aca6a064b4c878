"""``orchestrator.state`` as the seed uses it, on real Kafka, PostgreSQL (and S3).

Each test runs its own stack (fresh database and topics, the projection processor
in the background); see ``_state_stack``.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from _state_stack import Stack, state_stack

from orchestrator.commands import (
    CreateExecution,
    ExecutionWriter,
    StartTask,
    StartValidation,
    SucceedValidation,
)
from orchestrator.events.errors import InvalidTransition
from orchestrator.state import (
    BatchStateManager,
    CheckpointCorrupt,
    FilesystemBlobStore,
    ImmutableVariable,
    NotInTask,
    S3BlobStore,
    StaleExpectedVersion,
    StateManager,
    checkpoint,
    configure,
)


@pytest.fixture
async def stack(kafka: Any, postgres: str, tmp_path: Path) -> Any:
    async with state_stack(kafka, postgres, blob_store=FilesystemBlobStore(tmp_path)) as s:
        configure(s.runtime)  # the seed's module-level API uses the process's runtime
        try:
            yield s
        finally:
            configure(None)


async def _running(stack: Stack, *tasks: str) -> ExecutionWriter:
    writer = await stack.runtime.create_execution(
        CreateExecution(
            execution_id=f"exec_{uuid.uuid4().hex[:10]}",
            pipeline_id="research_pipeline",
            tasks=tasks,
        )
    )
    await writer.execute_many([StartValidation(), SucceedValidation()])
    return writer


def _big_payload() -> dict[str, Any]:
    """~600 KB of JSON that stays above 256 KiB after zstd."""
    return {"result_1": random.Random(7).randbytes(300_000).hex(), "progress": 0.66}


async def _checkpoint_round_trip(writer: ExecutionWriter) -> tuple[Any, Any]:
    await writer.execute(StartTask(task_id="custom_task"))
    with checkpoint.task_scope(writer, "custom_task"):
        small = await checkpoint.save(
            name="after_part_1",
            data={"result_1": [1, 2, 3], "progress": 0.33},
            metadata={"timestamp": datetime(2024, 1, 15, 10, 5), "memory_usage": 512},
        )
        big = await checkpoint.save(name="after_part_2", data=_big_payload())

    listed = await checkpoint.list(
        pipeline_id="research_pipeline", execution_id=writer.execution_id
    )
    assert [(cp.id, cp.name, cp.task_id) for cp in listed] == [
        (small.id, "after_part_1", "custom_task"),
        (big.id, "after_part_2", "custom_task"),
    ]
    assert listed[0].metadata == {"timestamp": "2024-01-15T10:05:00", "memory_usage": 512}
    assert (listed[0].progress, listed[1].progress) == (0.33, 0.66)

    restored = await checkpoint.restore(checkpoint_id=listed[-1].id)
    assert restored.data == _big_payload()
    assert restored.sequence == big.sequence == restored.state.last_sequence
    assert [ref.checkpoint_id for ref in restored.state.checkpoints] == [small.id, big.id]
    earlier = await checkpoint.restore(checkpoint_id=small.id)
    assert earlier.data == {"result_1": [1, 2, 3], "progress": 0.33}
    assert earlier.state.last_sequence == small.sequence
    assert [ref.checkpoint_id for ref in earlier.state.checkpoints] == [small.id]
    assert earlier.state.tasks["custom_task"].status == "running"
    return small, big


async def test_checkpoint_save_list_restore_with_claim_checked_data(
    stack: Stack, tmp_path: Path
) -> None:
    writer = await _running(stack, "custom_task")
    _, big = await _checkpoint_round_trip(writer)

    blobs = [p for p in tmp_path.rglob("*") if p.is_file()]  # noqa: ASYNC240 - a test
    assert len(blobs) == 1 and blobs[0].stat().st_size > 256 * 1024
    blobs[0].write_bytes(b"tampered" + blobs[0].read_bytes()[8:])
    with pytest.raises(CheckpointCorrupt, match="failed verification"):
        await checkpoint.restore(checkpoint_id=big.id)


async def test_checkpoint_blobs_in_s3(kafka: Any, postgres: str, s3: Any) -> None:
    store = S3BlobStore(s3.client(), s3.bucket, prefix=f"test-{uuid.uuid4().hex[:8]}/")
    async with state_stack(kafka, postgres, blob_store=store) as stack:
        configure(stack.runtime)
        try:
            writer = await _running(stack, "custom_task")
            _, big = await _checkpoint_round_trip(writer)
            [uri] = [ref async for ref in _blob_uris(stack, big.id)]
            parts = urlsplit(uri)
            await asyncio.to_thread(
                store.client.put_object, Bucket=parts.netloc, Key=parts.path[1:], Body=b"x"
            )
            with pytest.raises(CheckpointCorrupt, match="failed verification"):
                await checkpoint.restore(checkpoint_id=big.id)
        finally:
            configure(None)


async def _blob_uris(stack: Stack, checkpoint_id: str) -> Any:
    data = await stack.pool.fetchval(  # the archive holds the one copy (its blob's marker)
        "SELECT payload->'data'->'$blob'->>'uri' FROM execution_events"
        " WHERE event_type = 'CheckpointSaved' AND payload->>'checkpoint_id' = $1",
        checkpoint_id,
    )
    yield data


async def test_checkpoint_save_outside_a_task_is_a_clear_error(stack: Stack) -> None:
    with pytest.raises(NotInTask, match="inside a running task"):
        await checkpoint.save(name="nowhere", data={})


async def test_immutable_and_stale_writes_are_refused_and_write_nothing(stack: Stack) -> None:
    manager = StateManager()
    ns = "research_pipeline"
    await manager.set_variable(ns, "quality_threshold", 0.8, type="float", immutable=True)
    first = await manager.set_variable(ns, "search_results", ["a"], updated_by="web_search")
    assert first.topic == stack.topics.shared.name

    before = await stack.end_offsets()
    with pytest.raises(ImmutableVariable) as immutable:
        await manager.set_variable(ns, "quality_threshold", 0.9)
    assert (immutable.value.namespace, immutable.value.name) == (ns, "quality_threshold")
    with pytest.raises(ImmutableVariable):
        await manager.delete_variable(ns, "quality_threshold")
    with pytest.raises(StaleExpectedVersion) as stale:
        await manager.set_variable(ns, "search_results", ["b"], expected_version=0)
    assert (stale.value.expected, stale.value.actual) == (0, 1)
    assert await stack.end_offsets() == before

    await manager.set_variable(ns, "search_results", ["a", "b"], expected_version=1)
    with pytest.raises(StaleExpectedVersion, match="expected version 1, current is 2"):
        await manager.set_variable(ns, "search_results", ["c"], expected_version=1)
    await manager.set_variable(ns, "search_results", ["lww"])  # last write wins

    var = await manager.get_variable(ns, "search_results", consistency="strong")
    assert var is not None
    assert (var.value, var.version, var.type) == (["lww"], 3, "list")
    threshold = await manager.get_variable(ns, "quality_threshold")
    assert threshold is not None and threshold.immutable and threshold.value == 0.8


async def test_compare_and_set_from_two_processes_lets_exactly_one_win(stack: Stack) -> None:
    ns = f"ns_{uuid.uuid4().hex[:6]}"
    await StateManager().set_variable(ns, "counter", 0)
    managers = [StateManager(stack.new_runtime(f"node-{i}")) for i in range(4)]
    results = await asyncio.gather(
        *(m.set_variable(ns, "counter", i + 1, expected_version=1) for i, m in enumerate(managers)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, StaleExpectedVersion) for r in results if isinstance(r, BaseException))


async def test_strong_reads_see_the_managers_own_writes(stack: Stack) -> None:
    writer = await _running(stack, "web_search")
    manager = StateManager()
    state = await manager.get_pipeline_state(writer.execution_id, consistency="strong")
    assert state.status == "running" and state.pending_tasks == ("web_search",)
    position = await writer.execute(StartTask(task_id="web_search", inputs={"query": "q"}))
    task = await manager.get_task_state(writer.execution_id, "web_search", position=position)
    assert (task.status, task.attempts, task.inputs) == ("running", 1, {"query": "q"})


async def test_batch_with_one_invalid_update_writes_nothing(stack: Stack) -> None:
    writer = await _running(stack, "a", "b", "c")
    await writer.execute_many([StartTask(task_id=t) for t in ("a", "b", "c")])
    manager = BatchStateManager(batch_size=100, flush_interval=5.0)
    before = await stack.end_offsets()
    with pytest.raises(InvalidTransition, match="task b"):
        async with manager.batch() as batch:
            await batch.update_task_state(
                task_id="a", status="completed", outputs={"r": 1}, execution_id=writer.execution_id
            )
            await batch.update_task_state(
                task_id="b", status="scheduled", execution_id=writer.execution_id
            )
    assert await stack.end_offsets() == before
    assert {t.status for t in writer.state.tasks.values()} == {"running"}

    with checkpoint.task_scope(writer, "a"):  # the execution comes from the task scope
        async with manager.batch() as batch:
            for task_id in ("a", "b", "c"):
                await batch.update_task_state(task_id=task_id, status="completed", outputs=task_id)
    assert len(batch.positions) == 3
    assert len({(p.topic, p.partition) for p in batch.positions}) == 1
    state = await StateManager().get_pipeline_state(
        writer.execution_id, position=batch.positions[-1]
    )
    assert state.completed_tasks == ("a", "b", "c") and state.progress == 1.0
