"""The task loop's append in flight (``runtime/_inflight.py``) against the real stack.

A task's body runs while the append that started it is being acknowledged. These tests
hold Kafka's acknowledgement of chosen appends back (the append reaches the broker; its
answer is delayed, as on a slow network) to put other commands of the run inside that
window, and check what a user relies on: every task's body runs once per attempt, the
run ends as it would have without the overlap.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from _state_stack import Stack, state_stack

from orchestrator.commands import WriterSettings
from orchestrator.events import Envelope, EventLog, Position, TaskStarted
from orchestrator.runtime import CheckpointPolicy, Orchestrator, Pipeline, Policies, RetryPolicy
from orchestrator.state import StateManager, StateRuntime, StateSettings

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.2)


class HeldAcks:
    """The session's ``EventLog``; the acknowledgement of the first append that starts a
    given task is handed back only once a given coroutine returns."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self._holds: dict[str, Callable[[], Awaitable[None]]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)

    def hold(self, task_id: str, until: Callable[[], Awaitable[None]]) -> None:
        self._holds[task_id] = until

    async def append_batch(
        self, envelopes: Sequence[Envelope], topic: str | None = None
    ) -> list[Position]:
        positions = await self._log.append_batch(envelopes, topic)
        for e in envelopes:
            if isinstance(e.payload, TaskStarted) and e.payload.task_id in self._holds:
                await self._holds.pop(e.payload.task_id)()
        return positions

    async def append(self, envelope: Envelope, topic: str | None = None) -> Position:
        return (await self.append_batch([envelope], topic))[0]


@pytest.fixture(scope="module")
async def stack(kafka: Any, postgres: str) -> AsyncIterator[Stack]:
    async with state_stack(kafka, postgres, lease_ttl=3.0) as s:
        yield s


@pytest.fixture
async def held(stack: Stack) -> AsyncIterator[tuple[HeldAcks, StateRuntime]]:
    """A runtime of its own whose log holds chosen acknowledgements back."""
    log = HeldAcks(stack.log)
    settings = StateSettings(
        node_id="inflight-node", projection=stack.projection, writer=WriterSettings(lease_ttl=3.0)
    )
    runtime = StateRuntime(pool=stack.pool, log=log, settings=settings)  # type: ignore[arg-type]
    try:
        yield log, runtime
    finally:
        await runtime.close()


def orchestrator_for(runtime: StateRuntime) -> Orchestrator:
    policies = Policies(retry=FAST_RETRY, checkpoints=CheckpointPolicy.of(enabled=False))
    return Orchestrator(runtime, policies=policies)


async def test_a_task_failing_while_its_start_is_acknowledged_reruns_no_finished_sibling(
    stack: Stack, held: tuple[HeldAcks, StateRuntime]
) -> None:
    """``a`` starts ``b`` and ``c`` in one append. ``b`` finishes at once, so the task
    loop waits on that append to send ``b``'s completion with ``d``'s start; ``c`` fails
    and its ``FailTask`` waits on the same append. Whoever wakes second must not forget
    the append the task loop sent meanwhile: ``b`` ran once and the run completes."""
    log, runtime = held
    pipeline = Pipeline("inflight_siblings")
    runs = {"a": 0, "b": 0, "c": 0, "d": 0}
    c_failed, d_ran = asyncio.Event(), asyncio.Event()

    @pipeline.task()
    async def a() -> int:
        runs["a"] += 1
        return 1

    @pipeline.task(depends_on=["a"])
    async def b(a: int) -> str:
        runs["b"] += 1
        return "b"

    @pipeline.task(depends_on=["a"])
    async def c(a: int) -> str:
        runs["c"] += 1
        if runs["c"] == 1:
            await asyncio.sleep(0.3)  # the task loop is waiting on the append by now
            c_failed.set()
            raise ConnectionError("model endpoint down")
        return "c"

    @pipeline.task(depends_on=["b"])
    async def d(b: str) -> str:
        runs["d"] += 1
        d_ran.set()
        return "d"

    async def after_c_failed() -> None:
        await c_failed.wait()

    async def after_d_ran() -> None:
        await d_ran.wait()
        await asyncio.sleep(0.3)  # the task loop has looked at its tasks again by now

    log.hold("c", after_c_failed)
    log.hold("d", after_d_ran)

    result = await orchestrator_for(runtime).run_pipeline(pipeline)

    assert result.status == "completed"
    assert result.result == {"c": "c", "d": "d"}
    assert runs == {"a": 1, "b": 1, "c": 2, "d": 1}
    state = await StateManager(runtime).get_pipeline_state(
        result.execution_id, position=runtime.written()[-1]
    )
    assert {t: (s.status, s.attempts) for t, s in state.tasks.items()} == {
        "a": ("completed", 1),
        "b": ("completed", 1),
        "c": ("completed", 2),
        "d": ("completed", 1),
    }


async def test_a_run_cancelled_while_a_start_is_acknowledged_lets_go_after_it_and_resumes(
    stack: Stack, held: tuple[HeldAcks, StateRuntime]
) -> None:
    """Process shutdown (the run cancelled) while ``b`` runs ahead of the ack of the
    append that started it: the run lets go of the execution only once that append has
    settled, and another node resumes it at once: ``b`` was interrupted, so it runs
    again as attempt 2, and each task's completion is applied once."""
    log, runtime = held
    pipeline = Pipeline("inflight_cancelled")
    runs = {"a": 0, "b": 0}
    b_running, ack = asyncio.Event(), asyncio.Event()

    @pipeline.task()
    async def a() -> int:
        runs["a"] += 1
        return 1

    @pipeline.task(depends_on=["a"])
    async def b(a: int) -> int:
        runs["b"] += 1
        if runs["b"] == 1:
            b_running.set()
            await asyncio.Event().wait()  # until cancelled
        return a + 1

    async def until_acked() -> None:
        await ack.wait()

    log.hold("b", until_acked)
    run = asyncio.create_task(orchestrator_for(runtime).run_pipeline(pipeline))
    await b_running.wait()
    run.cancel()
    # The append is not acknowledged yet: the run cannot end (and release the lease).
    done, _ = await asyncio.wait({run}, timeout=0.5)
    assert not done
    ack.set()
    with pytest.raises(asyncio.CancelledError):
        await run
    [execution_id] = [
        r["execution_id"]
        for r in await stack.pool.fetch(
            "SELECT execution_id FROM pipeline_states WHERE pipeline_id = $1", pipeline.pipeline_id
        )
    ]

    other = stack.new_runtime("inflight-successor")
    try:
        result = await orchestrator_for(other).resume_pipeline(execution_id=execution_id, wait=0)
        await other.wait_for(other.written())
    finally:
        await other.close()
    assert result.status == "completed" and result.result == 2
    assert runs == {"a": 1, "b": 2}
    assert result.attempts == {"a": 1, "b": 2}
    completed = await stack.pool.fetch(
        "SELECT payload->>'task_id' AS task, count(*) AS n FROM execution_events"
        " WHERE execution_id = $1 AND outcome = 'applied' AND event_type = 'TaskCompleted'"
        " GROUP BY 1 ORDER BY 1",
        execution_id,
    )
    assert [tuple(r) for r in completed] == [("a", 1), ("b", 1)]
