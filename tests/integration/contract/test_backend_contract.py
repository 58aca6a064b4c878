"""What every backend must do, through the public API (``orchestrator.connect``).

One suite, run against each entry of ``_backends.BACKENDS`` (memory, the default
Kafka + PostgreSQL, and the filesystem and S3 snapshot stores; adding a backend is one
entry there): state written is read back; checkpoints save, list and restore, and a
restore equals the fold of the log up to the checkpoint, and the history replays to it
(and forks from it); a stale owner is refused and
its late events change nothing; an execution interrupted in one connection resumes in
the next, skipping completed tasks; locks are exclusive and their fencing tokens grow;
one leader at a time. The memory entry needs no server (``-k memory``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from _backends import BACKENDS, Backend

from orchestrator import Pipeline, PipelineFailed
from orchestrator.commands import (
    CreateExecution,
    DeleteCheckpoints,
    ExecutionNotOwned,
    ExecutionWriter,
    ImmutableVariable,
    LeaseLost,
    LockTimeout,
    SaveCheckpoint,
    StaleExpectedVersion,
    StartValidation,
    WriterSettings,
    decide,
)
from orchestrator.debug import Target, fork_execution
from orchestrator.events import Envelope, ExecutionState, fold
from orchestrator.state import LeaderElection, checkpoint, current_task
from orchestrator.state.services import StateRuntime


@pytest.fixture(params=sorted(BACKENDS))
def backend_fixtures(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """The backend's name and the session fixtures its entry needs (resolved here, so
    only the servers of the backends collected are started)."""
    entry = BACKENDS[request.param]
    return request.param, {name: request.getfixturevalue(name) for name in entry.needs}


@pytest.fixture
async def backend(
    backend_fixtures: tuple[str, dict[str, Any]], tmp_path: Path
) -> AsyncIterator[Backend]:
    name, fixtures = backend_fixtures
    async with BACKENDS[name].factory(fixtures, tmp_path) as made:
        yield made


def _pipeline(tag: str) -> Pipeline:
    return Pipeline(f"contract-{tag}-{uuid.uuid4().hex[:8]}")


async def _history(rt: StateRuntime, execution_id: str) -> list[Envelope]:
    """The execution's events as the log holds them (every partition read, in order)."""
    topic = rt.log.topics.pipeline.name
    events: list[Envelope] = []
    for partition, end in (await rt.log.end_offsets(topic)).items():
        async for _position, envelope in rt.log.read_range(topic, partition, 0, end):
            if envelope.execution_id == execution_id:
                events.append(envelope)
    return events


async def test_state_written_is_read_back(backend: Backend) -> None:
    pipeline = _pipeline("state")

    @pipeline.task()
    async def fetch(context: Any) -> dict[str, int]:
        return {"pages": 3}

    @pipeline.task(depends_on=["fetch"])
    async def count(fetch: dict[str, int]) -> int:
        return fetch["pages"] * 2

    async with backend.open() as state:
        result = await state.run(pipeline, {"user_id": "u1"})
        assert (result.status, result.result) == ("completed", 6)
        manager = state.state_manager()
        read = await manager.get_pipeline_state(result.execution_id, consistency="strong")
        assert read.status == "completed" and read.completed_tasks == ("fetch", "count")
        task = await manager.get_task_state(result.execution_id, "count", consistency="strong")
        assert (task.status, task.outputs) == ("completed", 6)

        ns = f"ns-{uuid.uuid4().hex[:6]}"
        await manager.set_variable(ns, "threshold", 0.8, type="float", immutable=True)
        await manager.set_variable(ns, "results", [1, 2], type="list")
        with pytest.raises(ImmutableVariable):  # the same validation on every backend
            await manager.set_variable(ns, "threshold", 0.9)
        with pytest.raises(StaleExpectedVersion):
            await manager.set_variable(ns, "results", [3], expected_version=7)
        view = await manager.get_shared_state(ns, consistency="strong")
        assert {k: v.value for k, v in view.variables.items()} == {
            "threshold": 0.8,
            "results": [1, 2],
        }


async def test_checkpoints_restore_equals_the_fold(backend: Backend) -> None:
    pipeline = _pipeline("checkpoints")

    @pipeline.task()
    async def work(context: Any) -> str:
        for step in range(5):
            await checkpoint.save(f"step-{step}", {"step": step, "progress": step / 5})
        return "done"

    async with backend.open() as state:
        result = await state.run(pipeline)
        saved = [
            c
            for c in await checkpoint.list(execution_id=result.execution_id)
            if c.name.startswith("step-")
        ]
        assert [c.name for c in saved] == [f"step-{i}" for i in range(5)]
        history = await _history(state.runtime, result.execution_id)
        for step, info in enumerate(saved):
            restored = await checkpoint.restore(info.id)
            assert restored.data == {"step": step, "progress": step / 5}
            end = next(i for i, e in enumerate(history) if e.sequence == info.sequence)
            folded = fold(history[: end + 1])
            assert isinstance(folded, ExecutionState)
            assert restored.state == folded
            assert restored.sequence == info.sequence


async def test_a_hand_given_checkpoint_id_reused_by_two_runs_stays_each_ones(
    backend: Backend,
) -> None:
    """Two runs save under the same hand-given id; the second withdraws and saves it
    again. Each run's state as served equals the fold of its own log; the first still
    lists its checkpoint, and the id alone restores the newest save."""
    pipeline = _pipeline("reused")

    @pipeline.task()
    async def work(context: Any) -> None:
        task = current_task()
        assert task is not None
        save = SaveCheckpoint(name="mine", task_id=task.task_id, checkpoint_id="shared", data=1)
        await task.writer.execute(save)
        if runs:  # the second run
            await task.writer.execute(DeleteCheckpoints(checkpoint_ids=["shared"]))
            await task.writer.execute(replace(save, name="mine again", data=2))
        runs.append(task.execution_id)

    runs: list[str] = []
    async with backend.open() as state:
        first, second = await state.run(pipeline), await state.run(pipeline)
        manager, rt = state.state_manager(), state.runtime
        mine: dict[str, int] = {}
        for run in (first, second):
            served = await manager.get_pipeline_state(run.execution_id, consistency="strong")
            assert served == fold(await _history(rt, run.execution_id))
            listed = await checkpoint.list(execution_id=run.execution_id)
            [mine[run.execution_id]] = [c.sequence for c in listed if c.id == "shared"]
        restored = await checkpoint.restore("shared")
        assert (restored.execution_id, restored.data) == (second.execution_id, 2)
        # A run reads its own save's data (a retry from it), not the newest of the id.
        at = (first.execution_id, mine[first.execution_id])
        chain = await rt.read_model.checkpoint_chain("shared", at)
        assert chain is not None and chain[-1].name == "mine"
        newest = await rt.read_model.checkpoint_chain("shared")
        assert newest is not None and newest[-1].name == "mine again"


async def test_history_replays_to_each_checkpoint_and_forks(backend: Backend) -> None:
    pipeline = _pipeline("history")

    @pipeline.task()
    async def work(context: Any) -> str:
        for step in range(3):
            await checkpoint.save(f"step-{step}", {"step": step})
        return "done"

    async with backend.open() as state:
        result = await state.run(pipeline)
        debugger = state.debugger()
        saved = [
            c
            for c in await checkpoint.list(execution_id=result.execution_id)
            if c.name.startswith("step-")
        ]
        for info in saved:
            replayed = await debugger.replay(result.execution_id, Target(checkpoint=info.id))
            assert replayed.state == (await checkpoint.restore(info.id)).state
        latest = await debugger.replay(result.execution_id)
        assert latest.state.status == "completed"
        fork = await fork_execution(
            result.execution_id, checkpoint_id=saved[1].id, debugger=debugger
        )
        forked = await state.state_manager().get_pipeline_state(
            fork.execution_id, consistency="strong"
        )
        assert forked.forked_from == result.execution_id
        assert [c.name for c in forked.checkpoints][:2] == ["step-0", "step-1"]


async def test_a_snapshot_plus_later_events_equals_the_fold(backend: Backend) -> None:
    if not backend.snapshots:
        pytest.skip(f"{backend.name} writes no snapshots (its cached state is the fold)")
    pipeline = _pipeline("snapshot")

    @pipeline.task()
    async def work(context: Any) -> int:
        await checkpoint.save("half", {"progress": 0.5})
        return 1

    async with backend.open() as state:
        result = await state.run(pipeline)
        await state.runtime.wait_for(state.runtime.written())  # archived (read-your-writes)
        debugger = state.debugger()
        deadline = time.monotonic() + 120
        while True:  # the snapshotter writes one on the terminal status, asynchronously
            replayed = await debugger.replay(result.execution_id)
            if replayed.snapshot_key is not None:
                break
            assert time.monotonic() < deadline, "no snapshot was written"
            await asyncio.sleep(0.2)
        assert replayed.state == fold(await _history(state.runtime, result.execution_id))
        assert replayed.state.status == "completed"


async def test_a_stale_owner_is_refused(backend: Backend) -> None:
    execution_id = f"exec-fence-{uuid.uuid4().hex[:8]}"
    async with backend.open() as state:
        rt = state.runtime
        # The zombie: a writer whose lease lives 1 s and that never renews it (a process
        # paused, e.g. by a long GC), so it expires while the writer still exists.
        zombie = ExecutionWriter(
            execution_id,
            node_id=f"zombie-{uuid.uuid4().hex[:6]}",
            log=rt.log,
            leases=rt.leases,
            read_model=rt.read_model,
            settings=WriterSettings(lease_ttl=1.0, renew_interval=3600),
        )
        await zombie.create(CreateExecution(execution_id=execution_id, pipeline_id="fence"))
        assert zombie.epoch == 1
        owner = rt.new_writer(execution_id)
        with pytest.raises(ExecutionNotOwned):  # the live lease is not taken
            await owner.open()
        taken = await owner.open(wait=10)  # once the zombie's lease expired
        assert owner.epoch > zombie.epoch and taken.epoch == owner.epoch

        with pytest.raises(LeaseLost):  # the zombie's command writes nothing
            await zombie.execute(StartValidation())
        # A late append with the zombie's epoch (sent before it noticed) is dropped by
        # the fold, and does not take the sequence the owner writes next.
        before = taken.last_sequence
        [payload] = decide(taken, StartValidation())
        late = Envelope(
            execution_id=execution_id,
            pipeline_id="fence",
            sequence=before + 1,
            epoch=zombie.epoch,
            payload=payload,
            producer=zombie.node_id,
        )
        [position] = await rt.log.append_batch([late])
        await rt.wait_for([position])
        seen = await rt.read_model.load_execution(execution_id)
        assert seen is not None
        assert (seen.status, seen.last_sequence) == ("initialized", before)
        await owner.execute(StartValidation())
        await rt.wait_for([owner.last_position])
        seen = await rt.read_model.load_execution(execution_id)
        assert seen is not None
        assert (seen.status, seen.last_sequence, seen.epoch) == (
            "validating",
            before + 1,
            owner.epoch,
        )
        await owner.close()
        await zombie.close()


async def test_an_interrupted_execution_resumes_in_a_new_connection(backend: Backend) -> None:
    pipeline = _pipeline("resume")
    calls = {"fetch": 0, "summarize": 0}
    model = {"up": False}

    @pipeline.task()
    async def fetch(context: Any) -> dict[str, int]:
        calls["fetch"] += 1
        await checkpoint.save("fetched", {"pages": 3})
        return {"pages": 3}

    @pipeline.task(depends_on=["fetch"])
    async def summarize(fetch: dict[str, int]) -> str:
        calls["summarize"] += 1
        if not model["up"]:
            raise RuntimeError("model timed out")
        return f"{fetch['pages']} pages"

    async with backend.open() as first:  # the first process: summarize fails
        with pytest.raises(PipelineFailed) as failed:
            await first.run(pipeline)
    execution_id = failed.value.execution_id
    model["up"] = True
    async with backend.open() as second:  # a new process on the same store
        state = await second.state_manager().get_pipeline_state(execution_id)
        assert state.status == "failed" and state.completed_tasks == ("fetch",)
        result = await second.resume(execution_id)
        assert (result.status, result.result) == ("completed", "3 pages")
        assert result.reused_tasks == ("fetch",)
    assert calls == {"fetch": 1, "summarize": 3}  # two attempts, then the resumed one


async def test_a_cancelled_run_resumes_where_it_stopped(backend: Backend) -> None:
    pipeline = _pipeline("crash")
    started = asyncio.Event()
    calls = {"fetch": 0, "slow": 0}

    @pipeline.task()
    async def fetch(context: Any) -> int:
        calls["fetch"] += 1
        return 2

    @pipeline.task(depends_on=["fetch"])
    async def slow(fetch: int) -> int:
        calls["slow"] += 1
        if calls["slow"] == 1:
            started.set()
            await asyncio.Event().wait()  # the process dies in here
        return fetch * 10

    async with backend.open() as first:
        run = asyncio.create_task(first.run(pipeline))
        await started.wait()
        [execution_id] = first.orchestrator.running or [None]
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
    assert execution_id is not None
    async with backend.open() as second:
        result = await second.resume(execution_id)
    assert (result.status, result.result, result.reused_tasks) == ("completed", 20, ("fetch",))
    assert calls == {"fetch": 1, "slow": 2}


async def test_locks_are_exclusive_and_tokens_grow(backend: Backend) -> None:
    name = f"contract-lock-{uuid.uuid4().hex[:8]}"
    async with backend.open() as state:
        first = state.lock(name, ttl=5)
        async with first:
            with pytest.raises(LockTimeout):
                await state.lock(name, ttl=5, timeout=0.2).acquire()
            first_token = first.fencing_token

        inside: list[int] = []
        tokens: list[int] = []

        async def worker() -> None:
            async with state.lock(name, ttl=5, retry_interval=0.02, timeout=60) as lock:
                inside.append(1)
                assert len(inside) == 1, "two holders at once"
                tokens.append(lock.fencing_token)
                await asyncio.sleep(0.01)
                inside.pop()

        await asyncio.gather(*(worker() for _ in range(5)))
        assert tokens == sorted(tokens) and len(set(tokens)) == 5
        assert tokens[0] > first_token


async def test_one_leader_at_a_time(backend: Backend) -> None:
    name = f"contract-leader-{uuid.uuid4().hex[:8]}"
    async with backend.open() as state:
        store = state.runtime.leases
        a = LeaderElection(name, "node-a", 3, store=store)
        b = LeaderElection(name, "node-b", 3, store=store)
        assert await a.is_leader() is True
        assert await b.is_leader() is False
        assert await b.leader() == "node-a"
        await a.resign()
        deadline = time.monotonic() + 10
        while not await b.is_leader():
            assert time.monotonic() < deadline, "the follower never took over"
            await asyncio.sleep(0.05)
        assert await a.is_leader() is False
        await b.stop()
        await a.stop()
