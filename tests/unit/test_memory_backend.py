"""The memory backend's own options, with no server: ``max_size`` with LRU eviction of
what can be rebuilt (and refusal of history beyond it), ``persistence`` (an atomic
dump of the log, reloaded and re-folded at start), and its leases' rules.

What it shares with every backend (state, checkpoints, fencing, resume, locks) is in
``tests/integration/contract`` (its memory entry starts no server either)."""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from pathlib import Path
from typing import Any

import pytest

import orchestrator
from orchestrator.app.plan import PlanError, plan_app
from orchestrator.commands import DeleteCheckpoints, LeaseLost, SaveCheckpoint
from orchestrator.commands.memory import MemoryLeaseStore
from orchestrator.config import load_config
from orchestrator.events import LogError, Position
from orchestrator.events.memory import MemoryRecord
from orchestrator.events.memory_dump import MAGIC, read_dump, write_dump
from orchestrator.runtime import Pipeline
from orchestrator.state import checkpoint, current_task
from orchestrator.state.memory import MemoryReadModel


def _config(tmp_path: Path, **memory: Any) -> Path:
    lines = ['state_management:\n  backend: "memory"\n  config:\n']
    if "max_size" in memory:
        lines.append(f'    max_size: "{memory["max_size"]}"\n')
    if "path" in memory:
        interval = memory.get("interval", 60)
        lines.append(
            f"    persistence: {{enabled: true, interval: {interval}, path: {memory['path']}}}\n"
        )
    lines.append("recovery:\n  strategies:\n    task_failure: {max_attempts: 1}\n")
    path = tmp_path / f"memory-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text("".join(lines))
    return path


def _pipeline(payload: int = 0) -> Pipeline:
    pipeline = Pipeline(f"memory-{uuid.uuid4().hex[:8]}")

    @pipeline.task()
    async def fetch(context: Any) -> dict[str, Any]:
        await checkpoint.save("fetched", {"pages": 3, "padding": secrets.token_hex(payload // 2)})
        return {"pages": 3}

    @pipeline.task(depends_on=["fetch"])
    async def count(fetch: dict[str, int]) -> int:
        return fetch["pages"] * 2

    return pipeline


def _read_model(state: orchestrator.Connection) -> MemoryReadModel:
    model = state.runtime.read_model
    assert isinstance(model, MemoryReadModel)
    return model


async def test_lru_evicts_finished_states_only_and_rebuilds_them_equal(tmp_path: Path) -> None:
    config = _config(tmp_path, max_size="60KB")
    async with orchestrator.connect(config=config) as state:
        model = _read_model(state)
        finished = []
        for _ in range(12):
            result = await state.run(_pipeline(payload=2000))
            finished.append((result.execution_id, await model.load_execution(result.execution_id)))
        assert model.evictions > 0
        assert model.size_bytes <= 60_000 or not model._cached  # only history is left
        evicted = [eid for eid, _ in finished if not model.cached(eid)]
        assert evicted and finished[-1][0] not in evicted  # least recently used first
        for eid, before in finished:  # folded again from the log, equal to before
            assert await model.load_execution(eid) == before
        assert model.rebuilds >= len(evicted)
        listed = await checkpoint.list(execution_id=evicted[0])
        restored = await checkpoint.restore(next(c.id for c in listed if c.name == "fetched"))
        assert restored.data["pages"] == 3


async def test_a_running_execution_is_never_evicted(tmp_path: Path) -> None:
    config = _config(tmp_path, max_size="30KB")
    gate, started = asyncio.Event(), asyncio.Event()
    pipeline = Pipeline(f"memory-running-{uuid.uuid4().hex[:6]}")

    @pipeline.task()
    async def wait(context: Any) -> int:
        await checkpoint.save("started", {"padding": secrets.token_hex(1000)})
        started.set()
        await gate.wait()
        return 1

    async with orchestrator.connect(config=config) as state:
        model = _read_model(state)
        run = asyncio.create_task(state.run(pipeline))
        await started.wait()
        [running] = state.orchestrator.running
        for _ in range(6):
            await state.run(_pipeline(payload=2000))
        assert model.evictions > 0 and model.cached(running)
        gate.set()
        assert (await run).status == "completed"


async def test_history_beyond_max_size_is_refused_not_evicted(tmp_path: Path) -> None:
    config = _config(tmp_path, max_size="8KB")
    async with orchestrator.connect(config=config) as state:
        log = state.runtime.log
        with pytest.raises(orchestrator.PipelineFailed, match="max_size"):
            await state.run(_pipeline(payload=20_000))  # its checkpoint does not fit
        held = log.size_bytes
        assert 0 < held <= 8 * 1024
        with pytest.raises(LogError, match="max_size"):
            await log.append_raw(log.topics.pipeline.name, secrets.token_bytes(8000), key=b"k")
        assert log.size_bytes == held  # a refused append wrote nothing


async def test_persistence_dumps_the_log_and_reloads_it(tmp_path: Path) -> None:
    dump = tmp_path / "state" / "orchestrator.log"
    config = _config(tmp_path, path=dump)
    async with orchestrator.connect(config=config) as state:
        result = await state.run(_pipeline())
        ns = "memory-persist"
        await state.state_manager().set_variable(ns, "threshold", 0.8, type="float")
        before = await state.state_manager().get_pipeline_state(result.execution_id)
        written = list(state.runtime.log.dump())
    assert dump.read_bytes().startswith(MAGIC)
    assert [r.position for r in read_dump(dump)] == [r.position for r in written]
    assert not [p for p in dump.parent.iterdir() if p.name.endswith(".tmp")]

    async with orchestrator.connect(config=config) as state:  # a restarted process
        assert state.app.loaded == len(written)
        after = await state.state_manager().get_pipeline_state(result.execution_id)
        assert after == before
        var = await state.state_manager().get_variable(ns, "threshold")
        assert var is not None and var.value == 0.8
        listed = await checkpoint.list(execution_id=result.execution_id)
        [saved] = [c for c in listed if c.name == "fetched"]
        assert (await checkpoint.restore(saved.id)).data["pages"] == 3
        again = await state.run(_pipeline())  # and it keeps appending after the reload
        assert again.status == "completed"


async def test_persistence_dumps_every_interval(tmp_path: Path) -> None:
    dump = tmp_path / "interval.log"
    config = _config(tmp_path, path=dump, interval=0.05)
    async with orchestrator.connect(config=config) as state:
        await state.run(_pipeline())
        for _ in range(200):  # bounded: the dumper runs every 0.05 s
            if dump.exists():
                break
            await asyncio.sleep(0.05)
        assert len(list(read_dump(dump))) == len(list(state.runtime.log.dump()))


def test_a_failed_dump_leaves_the_previous_one_intact(tmp_path: Path) -> None:
    dump = tmp_path / "atomic.log"
    record = MemoryRecord(Position("t", 0, 0), b"k", b"value")
    write_dump(dump, [record])
    first = dump.read_bytes()

    def broken() -> Any:
        yield record
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_dump(dump, broken())
    assert dump.read_bytes() == first
    assert [p.name for p in tmp_path.iterdir()] == ["atomic.log"]
    dump.write_bytes(first[:-2])  # truncated by something else: refused by name
    with pytest.raises(LogError, match="truncated"):
        list(read_dump(dump))


async def test_memory_leases_follow_the_postgresql_rules() -> None:
    now = [0.0]
    store = MemoryLeaseStore(clock=lambda: now[0])
    a = await store.acquire("x", "a", 10)
    assert a is not None and a.epoch == 1
    assert await store.acquire("x", "b", 10) is None  # held
    again = await store.acquire("x", "a", 10)  # the same holder: a new tenure
    assert again is not None and again.epoch == 2
    with pytest.raises(LeaseLost):
        await store.renew(a)  # the old tenure is fenced off
    now[0] = 11.0
    with pytest.raises(LeaseLost):
        await store.renew(again)  # expired
    b = await store.acquire("x", "b", 10, min_epoch=7)
    assert b is not None and b.epoch == 7
    assert await store.release(again) is False
    assert [lease.holder for lease in await store.held("x")] == ["b"]
    assert await store.release(b) is True
    assert await store.current("x") is None
    c = await store.acquire("x", "c", 10)
    assert c is not None and c.epoch == 8  # release keeps the epoch


def test_server_commands_refuse_the_memory_backend() -> None:
    settings = load_config('state_management:\n  backend: "memory"\n', "<test>").settings
    with pytest.raises(PlanError, match=r'connect\(backend="memory"\)'):
        plan_app(settings, bootstrap="localhost:9092", dsn="postgresql:///x", node_id="n")


def test_connect_names_a_backend_it_cannot_choose() -> None:
    with pytest.raises(ValueError, match="redis"):
        orchestrator.connect(backend="redis")


README = Path(__file__).resolve().parents[2] / "README.md"


async def test_the_readme_memory_example_runs_as_printed() -> None:
    readme = await asyncio.to_thread(README.read_text)
    section = readme[readme.index("## Unit-test your pipeline with no servers") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "no python block in README's memory section"
    namespace: dict[str, Any] = {"__name__": "test_report"}
    exec(compile(match.group(1), "README.md", "exec"), namespace)
    await namespace["test_fetch_saves_a_checkpoint"]()


def _saving_shared(withdraw: bool) -> Pipeline:
    """A run that saves a checkpoint under the hand-given id ``shared`` (and withdraws it)."""
    pipeline = Pipeline(f"reuse-{withdraw}")

    @pipeline.task()
    async def save(context: Any) -> None:
        task = current_task()
        assert task is not None
        await task.writer.execute(
            SaveCheckpoint(name="mine", task_id=task.task_id, checkpoint_id="shared", data=1)
        )
        if withdraw:
            await task.writer.execute(DeleteCheckpoints(checkpoint_ids=["shared"]))

    return pipeline


async def test_a_hand_given_id_saved_by_two_executions_stays_each_ones() -> None:
    """Two runs save a checkpoint under the same hand-given id; the second withdraws its
    own: the first run still lists and restores its checkpoint (the memory index keeps
    each execution's save of an id, as the PostgreSQL rows do)."""
    async with orchestrator.connect(backend="memory") as state:
        first = await state.run(_saving_shared(False))
        second = await state.run(_saving_shared(True))

        def mine(listed: list[checkpoint.CheckpointInfo]) -> list[str]:
            return [c.id for c in listed if c.name == "mine"]

        assert mine(await checkpoint.list(execution_id=first.execution_id)) == ["shared"]
        assert mine(await checkpoint.list(execution_id=second.execution_id)) == []
        restored = await checkpoint.restore("shared")
        assert (restored.execution_id, restored.data) == (first.execution_id, 1)
