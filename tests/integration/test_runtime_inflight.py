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
from dataclasses import dataclass
from typing import Any

import pytest
from _state_stack import Stack, state_stack

from orchestrator.commands import WriterSettings
from orchestrator.events import (
    Envelope,
    EventLog,
    LogError,
    Payload,
    Position,
    TaskFailed,
    TaskStarted,
    fold,
)
from orchestrator.runtime import (
    CheckpointPolicy,
    Orchestrator,
    Pipeline,
    PipelineFailed,
    Policies,
    RetryPolicy,
)
from orchestrator.state import StateManager, StateRuntime, StateSettings

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.2)


@dataclass(frozen=True)
class _Hold:
    until: Callable[[], Awaitable[None]]
    fail: LogError | None
    landed: bool


class HeldAcks:
    """The session's ``EventLog``; the acknowledgement of the first append that holds a
    chosen event (a task's ``TaskStarted`` unless told) is handed back only once a given
    coroutine returns, or then fails with a given error, as the producer's does when
    Kafka does not acknowledge in time: after the records reached the broker
    (``landed``) or without their being sent."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self._holds: dict[tuple[type[Payload], str], _Hold] = {}
        self.failed: list[str] = []
        """The task ids whose held append was made to fail, in order."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)

    def hold(
        self,
        task_id: str,
        until: Callable[[], Awaitable[None]],
        *,
        on: type[Payload] = TaskStarted,
        fail: LogError | None = None,
        landed: bool = True,
    ) -> None:
        self._holds[(on, task_id)] = _Hold(until, fail, landed)

    async def append_batch(
        self, envelopes: Sequence[Envelope], topic: str | None = None
    ) -> list[Position]:
        held = [
            (key[1], self._holds.pop(key))
            for e in envelopes
            if (key := (type(e.payload), getattr(e.payload, "task_id", ""))) in self._holds
        ]
        sent = all(h.landed or h.fail is None for _, h in held)
        positions = await self._log.append_batch(envelopes, topic) if sent else []
        for task_id, h in held:
            await h.until()
            if h.fail is not None:
                self.failed.append(task_id)
                raise h.fail
        return positions

    async def append(self, envelope: Envelope, topic: str | None = None) -> Position:
        return (await self.append_batch([envelope], topic))[0]


def not_acknowledged() -> LogError:
    """What ``EventLog.append_batch`` raises when Kafka does not acknowledge in time."""
    return LogError(
        "appending events: not acknowledged by Kafka within 3 s (delivery_timeout_ms); "
        "outcome unknown, retry",
        retriable=True,
    )


async def turns(n: int = 10) -> None:
    """Let the event loop run ``n`` rounds. The task loop's steps from a task's end to its
    next command do no I/O, so they all run within them: no wall-clock wait."""
    for _ in range(n):
        await asyncio.sleep(0)


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


async def applied_completions(stack: Stack, execution_id: str) -> list[tuple[str, int]]:
    """How many times the fold applied each task's completion (the archive's verdicts)."""
    rows = await stack.pool.fetch(
        "SELECT payload->>'task_id' AS task, count(*) AS n FROM execution_events"
        " WHERE execution_id = $1 AND outcome = 'applied' AND event_type = 'TaskCompleted'"
        " GROUP BY 1 ORDER BY 1",
        execution_id,
    )
    return [(r["task"], r["n"]) for r in rows]


def add_root(pipeline: Pipeline, runs: dict[str, int]) -> None:
    """Task ``a``, where every pipeline here starts: it counts its runs and returns 1."""

    @pipeline.task()
    async def a() -> int:
        runs["a"] += 1
        return 1


def orchestrator_for(runtime: StateRuntime, retry: RetryPolicy = FAST_RETRY) -> Orchestrator:
    policies = Policies(retry=retry, checkpoints=CheckpointPolicy.of(enabled=False))
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

    add_root(pipeline, runs)

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


@pytest.mark.parametrize("lost", [False, True], ids=["acknowledged", "append-lost"])
async def test_a_run_cancelled_while_a_start_is_acknowledged_lets_go_after_it_and_resumes(
    stack: Stack, held: tuple[HeldAcks, StateRuntime], lost: bool
) -> None:
    """Process shutdown (the run cancelled) while ``b`` runs ahead of the ack of the
    append that started it: the run lets go of the execution only once that append has
    settled, and another node resumes it at once: ``b`` was interrupted, so it runs
    again as attempt 2, and each task's completion is applied once. If that append
    fails instead (``lost``: it never reached the log), the run writes nothing more:
    ``a`` (its completion lost) is the interrupted one and ``b`` starts afresh."""
    log, runtime = held
    pipeline = Pipeline(f"inflight_cancelled_{int(lost)}")
    runs = {"a": 0, "b": 0}
    b_running, ack = asyncio.Event(), asyncio.Event()

    add_root(pipeline, runs)

    @pipeline.task(depends_on=["a"])
    async def b(a: int) -> int:
        runs["b"] += 1
        if runs["b"] == 1:
            b_running.set()
            await asyncio.Event().wait()  # until cancelled
        return a + 1

    async def until_acked() -> None:
        await ack.wait()

    log.hold("b", until_acked, fail=not_acknowledged() if lost else None, landed=not lost)
    run = asyncio.create_task(orchestrator_for(runtime).run_pipeline(pipeline))
    await b_running.wait()
    run.cancel()
    # The append is not acknowledged yet: the run cannot end (and release the lease).
    done, _ = await asyncio.wait({run}, timeout=0.5)
    assert not done
    ack.set()
    with pytest.raises(asyncio.CancelledError):
        await run
    await runtime.wait_for(runtime.written())  # the read model lists the execution
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
    assert log.failed == (["b"] if lost else [])
    assert runs == {"a": 1 + lost, "b": 2}
    assert result.attempts == ({"a": 2, "b": 1} if lost else {"a": 1, "b": 2})
    assert await applied_completions(stack, execution_id) == [("a", 1), ("b", 1)]


@pytest.mark.parametrize(
    ("landed", "seen_first"),
    [(False, True), (True, True), (False, False)],
    ids=["append-lost", "append-landed", "append-lost-seen-with-it"],
)
async def test_a_start_append_failing_as_a_task_gives_up_still_fails_the_run_resumably(
    stack: Stack, held: tuple[HeldAcks, StateRuntime], landed: bool, seen_first: bool
) -> None:
    """``a`` starts ``b`` and ``d``. ``d`` fails for good (one attempt allowed); while its
    ``FailTask`` is acknowledged ``b`` finishes, so the task loop sends ``b``'s completion
    with ``e``'s start right after it (append Y). ``e`` finishes at once; Y fails as when
    Kafka does not acknowledge in time, its records in the log or not, after the task
    loop saw that ``d`` gave up or in the same round (``seen_first``: whichever the loop
    notices first must not change the outcome). The run ends as a failed task ends it:
    ``PipelineFailed`` naming ``d``; the execution is ``failed`` in the log's fold and in
    the read model alike, ``b``'s completion is kept, and a resume completes the run."""
    log, runtime = held
    pipeline = Pipeline(f"inflight_gave_up_{int(landed)}{int(seen_first)}")
    runs = {"a": 0, "b": 0, "d": 0, "e": 0}
    d_failing, b_returned, e_ran = asyncio.Event(), asyncio.Event(), asyncio.Event()

    add_root(pipeline, runs)

    @pipeline.task(depends_on=["a"])
    async def b(a: int) -> str:
        runs["b"] += 1
        await d_failing.wait()
        b_returned.set()
        return "b"

    @pipeline.task(depends_on=["a"])
    async def d(a: int) -> str:
        runs["d"] += 1
        if runs["d"] == 1:
            raise ConnectionError("model endpoint down")
        return "d"

    @pipeline.task(depends_on=["b"])
    async def e(b: str) -> str:
        runs["e"] += 1
        e_ran.set()
        return "e"

    async def d_failing_until_the_loop_waits() -> None:
        d_failing.set()
        await b_returned.wait()
        await turns()  # the task loop has decided Y and waits for the writer by now

    async def until_e_ran() -> None:
        await e_ran.wait()
        if seen_first:
            await turns()  # the task loop has seen that d gave up by now: Y fails after

    log.hold("d", d_failing_until_the_loop_waits, on=TaskFailed)
    log.hold("e", until_e_ran, fail=not_acknowledged(), landed=landed)
    orchestrator = orchestrator_for(runtime, RetryPolicy(max_attempts=1, base_delay=0.05))

    with pytest.raises(PipelineFailed) as failed:
        await orchestrator.run_pipeline(pipeline)

    assert (failed.value.task_id, failed.value.retryable) == ("d", True)
    assert log.failed == ["e"]  # the staged window was reached
    assert runs == {"a": 1, "b": 1, "d": 1, "e": 1}
    eid = failed.value.execution_id
    position = runtime.written()[-1]
    await runtime.wait_for([position])
    served = await runtime.read_model.load_execution(eid)
    folded = fold(e for _, e in await stack.read_partition(position) if e.execution_id == eid)
    expected = {
        "a": "completed",
        "b": "completed",
        "d": "failed",
        "e": "completed" if landed else "pending",
    }
    for state in (served, folded):
        assert state is not None
        assert state.status == "failed"
        assert {t: s.status for t, s in state.tasks.items()} == expected

    result = await orchestrator.resume_pipeline(execution_id=eid, wait=0)

    assert result.status == "completed" and result.result == {"d": "d", "e": "e"}
    # e's body ran ahead of a start that never reached the log: it runs again then.
    assert runs == {"a": 1, "b": 1, "d": 2, "e": 1 if landed else 2}
    await runtime.wait_for(runtime.written())
    assert await applied_completions(stack, eid) == [("a", 1), ("b", 1), ("d", 1), ("e", 1)]
