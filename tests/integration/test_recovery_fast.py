"""Fast, honest recovery: a crashed owner's lease is taken over as soon as its database
session is gone (not after the ttl), and a failed lease release after a run does not
hide the run's real outcome."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from _state_stack import Stack, state_stack

from orchestrator.commands import CreateExecution, StartValidation, WriterSettings
from orchestrator.runtime import Orchestrator, Pipeline, Policies
from orchestrator.state import StateRuntime, StateSettings

TTL = 60.0


@pytest.fixture(scope="module")
async def stack(kafka: Any, postgres: str) -> AsyncIterator[Stack]:
    async with state_stack(kafka, postgres, lease_ttl=TTL) as s:
        yield s


async def test_a_dead_owners_lease_is_taken_over_before_its_ttl(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    eid = f"exec_{uuid.uuid4().hex[:10]}"
    # The owner: a process of its own (own pool, so its sessions can die alone).
    owner_pool = await asyncpg.create_pool(stack.dsn, min_size=1, max_size=4)
    owner = StateRuntime(
        pool=owner_pool,
        log=stack.log,
        settings=StateSettings(
            node_id=f"owner-{uuid.uuid4().hex[:6]}",
            projection=stack.projection,
            writer=WriterSettings(lease_ttl=TTL),
        ),
    )
    writer = await owner.create_execution(
        CreateExecution(execution_id=eid, pipeline_id="fast_resume", tasks=("a",))
    )
    await writer.execute(StartValidation())
    held = await owner.leases.current(writer.lease_name)
    assert held is not None
    # The crash: every session of the owner ends at once, nothing is released.
    if writer._renewer is not None:
        writer._renewer.cancel()
    owner_pool.terminate()

    successor = stack.new_runtime(f"successor-{uuid.uuid4().hex[:6]}", lease_ttl=TTL)
    caplog.set_level(logging.INFO, logger="orchestrator.commands.leases")
    try:
        taken = await successor.open_execution(eid, wait=TTL)
        # Taken over while the dead owner's lease was still unexpired by the database's clock.
        assert await stack.pool.fetchval("SELECT now() < $1", held.expires_at)
        assert taken.epoch > held.epoch
        assert any("is gone" in r.getMessage() for r in caplog.records)
    finally:
        await successor.close()


async def test_a_failed_release_does_not_replace_the_pipelines_outcome(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = Pipeline(f"honest_{uuid.uuid4().hex[:6]}")

    @pipeline.task()
    async def answer() -> int:
        return 42

    runtime = stack.new_runtime(f"node-{uuid.uuid4().hex[:6]}")
    orchestrator = Orchestrator(runtime, policies=Policies())
    release = runtime.release_execution

    async def release_fails(execution_id: str) -> None:
        await release(execution_id)  # the lease goes; then the database "fails"
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")

    monkeypatch.setattr(runtime, "release_execution", release_fails)
    try:
        result = await orchestrator.run_pipeline(pipeline)
    finally:
        await runtime.close()
    assert result.status == "completed"
    assert result.result == 42
    assert any("releasing its lease failed" in r.getMessage() for r in caplog.records)
