"""A growing checkpoint on real Kafka and PostgreSQL: stored once (the archived record)
and as deltas, restored byte-identical at every checkpoint (``commands._deltas``)."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from _state_stack import state_stack

from orchestrator.commands import CreateExecution, StartTask, StartValidation, SucceedValidation
from orchestrator.events.userdata import json_bytes
from orchestrator.state import FilesystemBlobStore, checkpoint, configure
from orchestrator.state.sealed import decode_chain

_WORDS = "the model said we should compare the numbers with last quarter tokens".split()


@pytest.fixture
async def stack(kafka: Any, postgres: str, tmp_path: Path) -> Any:
    async with state_stack(kafka, postgres, blob_store=FilesystemBlobStore(tmp_path)) as s:
        configure(s.runtime)
        try:
            yield s
        finally:
            configure(None)


async def test_a_growing_checkpoint_is_stored_once_as_deltas_and_restores_exactly(
    stack: Any,
) -> None:
    rt = stack.runtime
    writer = await rt.create_execution(
        CreateExecution(
            execution_id=f"exec_{uuid.uuid4().hex[:10]}", pipeline_id="chat", tasks=("talk",)
        )
    )
    await writer.execute_many([StartValidation(), SucceedValidation(), StartTask(task_id="talk")])
    writer.settings = replace(writer.settings, checkpoint_full_every=50)  # a whole copy at 50
    rng = random.Random(3)
    history: list[dict[str, str]] = []
    saved: list[tuple[str, dict[str, Any]]] = []
    with checkpoint.task_scope(writer, "talk"):
        for i in range(60):
            history.append({"role": "user", "content": " ".join(rng.choices(_WORDS, k=120))})
            value = {"messages": list(history), "step": i}
            saved.append(((await checkpoint.save(name=f"step_{i}", data=value)).id, value))
    await rt.wait_for(rt.written())

    rows = await stack.pool.fetch(
        "SELECT payload FROM execution_events WHERE execution_id = $1"
        " AND event_type = 'CheckpointSaved' ORDER BY sequence",
        writer.execution_id,
    )
    payloads = [json.loads(r["payload"]) for r in rows]
    assert all(set(p["data"]) == {"$raw"} for p in payloads)  # the record is the copy
    wholes = [i for i, p in enumerate(payloads) if p["delta_base"] is None]
    assert wholes == [0, 50]
    copies = await stack.pool.fetchval(
        "SELECT count(*) FROM checkpoints WHERE execution_id = $1 AND data IS NOT NULL",
        writer.execution_id,
    )
    assert copies == 0

    for checkpoint_id, value in [saved[0], saved[1], saved[49], saved[50], saved[-1]]:
        restored = await checkpoint.restore(checkpoint_id)
        assert json_bytes(restored.data) == json_bytes(value)
        chain = await rt.read_model.checkpoint_chain(checkpoint_id)
        data = await decode_chain(chain, rt.blob_store, rt.data_keys)
        assert json_bytes(data) == json_bytes(value)
