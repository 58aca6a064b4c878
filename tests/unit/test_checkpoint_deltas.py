"""Checkpoint data stored as deltas against the previous checkpoint (``events.delta``,
``commands._deltas``): what a user relies on is that ``checkpoint.restore`` gives back
every checkpoint's data exactly as saved, whatever was stored, and that a growing
state costs what changed, not the whole state each time."""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import orchestrator
from orchestrator.commands import SaveCheckpoint, UserDataSettings
from orchestrator.commands._deltas import DEFAULT_FULL_EVERY, CheckpointBases
from orchestrator.events import BrokenChain, UserData, chain_of
from orchestrator.events import catalogue as c
from orchestrator.events.compression import CompressionError
from orchestrator.events.crypto import Sealer
from orchestrator.events.delta import apply_delta, delta_size, is_delta, make_delta
from orchestrator.events.errors import UserDataError
from orchestrator.events.userdata import (
    declared_size,
    decode_user_data,
    encode_user_data,
    encode_user_data_delta,
    json_bytes,
    user_data_bytes,
)
from orchestrator.runtime import Pipeline
from orchestrator.state import checkpoint
from orchestrator.state.memory import MemoryReadModel

_WORDS = "the model said we should compare the numbers with last quarter tokens".split()


def _message(rng: random.Random, i: int) -> dict[str, str]:
    return {
        "role": "user" if i % 2 else "assistant",
        "content": " ".join(rng.choices(_WORDS, k=150)),
    }


def test_a_delta_gives_back_the_target_exactly_and_only_from_its_base() -> None:
    rng = random.Random(1)
    messages = [_message(rng, i) for i in range(51)]
    base = json_bytes({"messages": messages[:50], "step": 1})
    target = json_bytes({"messages": messages, "step": 2})
    delta = make_delta(base, target)
    assert is_delta(delta) and delta_size(delta) == len(target)
    assert len(delta) < len(target) // 10
    assert apply_delta(base, delta, len(target)) == target
    with pytest.raises(CompressionError):
        apply_delta(base.replace(b"model", b"MODEL", 1), delta, len(target))  # another base
    with pytest.raises(CompressionError) as over:
        apply_delta(base, delta, len(target) - 1)  # declared size checked first
    assert over.value.over_limit
    with pytest.raises(CompressionError):
        apply_delta(base, delta[:-5], len(target))


def test_a_delta_is_sealed_and_opened_like_any_user_data() -> None:
    key = bytes(range(32))
    base = json_bytes({"history": ["a" * 3000]})
    target = json_bytes({"history": ["a" * 3000, "b" * 10]})
    sealed = encode_user_data_delta(target, base, sealer=Sealer("exec-1", key))
    assert sealed.inline is not None and target not in sealed.inline
    keys = {"exec-1": key}.get
    assert user_data_bytes(sealed, None, base=base, keys=keys) == target
    with pytest.raises(UserDataError, match="base"):
        user_data_bytes(sealed, None, keys=keys)
    plain = encode_user_data_delta(target, base)
    with pytest.raises(UserDataError, match="delta"):
        decode_user_data(plain)  # a reader unaware of deltas refuses, never guesses
    with pytest.raises(UserDataError, match="over the limit"):
        user_data_bytes(plain, None, base=base, max_bytes=len(target) - 1)
    assert plain.inline is not None and declared_size(plain.inline) == len(target)  # limits


def _saved(cid: str, value: Any, base: tuple[str, bytes] | None = None) -> c.CheckpointSaved:
    raw = json_bytes(value)
    if base is None:
        return c.CheckpointSaved(checkpoint_id=cid, name=cid, data=encode_user_data(value))
    data = encode_user_data_delta(raw, base[1])
    return c.CheckpointSaved(
        checkpoint_id=cid, name=cid, data=data, delta_base=base[0], delta_from=1
    )


def test_a_chain_runs_from_the_whole_copy_and_a_missing_base_is_an_error() -> None:
    one, two = {"n": [1] * 800}, {"n": [1] * 801}
    a = _saved("a", one)
    b = _saved("b", two, ("a", json_bytes(one)))
    other = _saved("x", {"other": True})
    assert [p.checkpoint_id for p in chain_of([a, other, b], "b")] == ["a", "b"]
    with pytest.raises(BrokenChain):
        chain_of([other, b], "b")


def _config(tmp_path: Path) -> Path:
    path = tmp_path / f"deltas-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text('state_management:\n  backend: "memory"\ncheckpointing:\n  enabled: false\n')
    return path


async def test_a_growing_state_restores_byte_identical_at_every_checkpoint(
    tmp_path: Path,
) -> None:
    steps = 120
    rng = random.Random(5)
    saved: list[tuple[str, dict[str, Any]]] = []
    pipeline = Pipeline(f"deltas-{uuid.uuid4().hex[:8]}")

    @pipeline.task()
    async def talk() -> int:
        history: list[dict[str, str]] = []
        for i in range(steps):
            history.append(_message(rng, i))
            value = {"messages": list(history), "step": i}
            done = await checkpoint.save(name=f"step_{i}", data=value)
            saved.append((done.id, value))
        return steps

    async with orchestrator.connect(config=_config(tmp_path)) as state:
        result = await state.run(pipeline)
        model = state.runtime.read_model
        assert isinstance(model, MemoryReadModel)
        events = [e for _, e in model.history(result.execution_id)]
        kinds = [
            e.payload.delta_base is not None
            for e in events
            if isinstance(e.payload, c.CheckpointSaved)
        ]
        wholes = [i for i, delta in enumerate(kinds) if not delta]
        assert wholes == list(range(0, steps, DEFAULT_FULL_EVERY))
        stored = sum(
            len(e.payload.data.inline or b"")
            for e in events
            if isinstance(e.payload, c.CheckpointSaved) and e.payload.data is not None
        )
        whole = sum(len(json_bytes(v)) for _, v in saved)
        assert stored < whole // 50  # what changed, not the whole state each time
        for checkpoint_id, value in saved[::7] + saved[-2:]:
            restored = await checkpoint.restore(checkpoint_id)
            assert json_bytes(restored.data) == json_bytes(value)


async def test_fresh_data_every_step_reads_back_exactly_and_is_mostly_stored_whole() -> None:
    """A value that shares nothing with the previous one (new data each step) gains
    nothing from a delta: after one that did not pay, the task backs off to whole
    copies; every stored value still reads back byte-identical."""
    bases, settings = CheckpointBases(DEFAULT_FULL_EVERY), UserDataSettings()
    acknowledged: list[SimpleNamespace] = []  # the writer state's checkpoints
    raw: dict[str, bytes] = {}
    rng, deltas, steps = random.Random(9), 0, 40
    for i in range(steps):
        value = {"result": rng.randbytes(2048).hex(), "step": i}
        bases._acknowledged(SimpleNamespace(checkpoints=acknowledged))  # type: ignore[arg-type]
        command = SaveCheckpoint(name=f"step_{i}", task_id="t", data=value)
        stored = await bases.encode(command, None, settings, "exec")
        assert isinstance(stored.data, UserData)
        base = None if stored.delta_base is None else raw[stored.delta_base]
        deltas += base is not None
        assert user_data_bytes(stored.data, None, base=base) == json_bytes(value)
        raw[command.checkpoint_id] = json_bytes(value)
        acknowledged.append(SimpleNamespace(checkpoint_id=command.checkpoint_id, sequence=i + 1))
    assert deltas <= steps // 4  # every one of them before the back-off
