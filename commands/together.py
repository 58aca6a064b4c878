"""Commands for several executions validated together and sent in one append
(``BatchStateManager``): all or nothing; and one writer's commands decided now and
acknowledged later (:func:`submit_many`, the task loop's pipelining)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from orchestrator.commands._metrics import counted, record_commands
from orchestrator.commands._writer_parts import Prepared
from orchestrator.commands.decide import Command
from orchestrator.commands.writer import ExecutionWriter
from orchestrator.events import ExecutionState, Position


@counted
async def execute_together(
    items: Sequence[tuple[ExecutionWriter, Sequence[Command]]], **ids: str | None
) -> list[list[Position]]:
    """Validate commands for several executions, all or nothing, and send them in one
    ``append_batch`` when the writers share a log (else one per log, in order).

    One list of positions per item, one position per command (each one is counted and
    timed in ``orchestrator_state_operations_total``).
    """
    if len(items) == 1:  # the common case (one writer's commands): no stack, no grouping
        writer, commands = items[0]
        async with writer.lock:
            return [await _send(writer, await writer.prepare(commands, **ids))]
    writers = sorted((w for w, _ in items), key=lambda w: w.execution_id)
    if len({id(w) for w in writers}) != len(writers):
        raise ValueError("execute_together: give each writer once, with all its commands")
    async with contextlib.AsyncExitStack() as stack:
        for writer in writers:
            await stack.enter_async_context(writer.lock)
        prepared = [await writer.prepare(commands, **ids) for writer, commands in items]
        by_log: dict[int, list[Prepared]] = {}
        for p in prepared:
            by_log.setdefault(id(p.writer.log), []).append(p)
        results: dict[int, list[Position]] = {}
        for group in by_log.values():
            envelopes = [e for p in group for e in p.envelopes]
            for p in group:
                p.writer._check_writable()
            if not envelopes:
                continue
            appender = group[0].writer
            try:
                positions = await appender.log.append_batch(envelopes, appender.topic)
            except BaseException:
                for p in group:
                    p.writer._resync = True
                raise
            offset = 0
            for p in group:
                results[id(p)] = positions[offset : offset + len(p.envelopes)]
                offset += len(p.envelopes)
        return [p.writer.commit(p, results.get(id(p), [])) for p in prepared]


async def _send(writer: ExecutionWriter, prepared: Prepared) -> list[Position]:
    """One writer's prepared batch appended (lock held) and adopted; as the loop above."""
    writer._check_writable()
    if not prepared.envelopes:
        return writer.commit(prepared, [])
    try:
        positions = await writer.log.append_batch(prepared.envelopes, writer.topic)
    except BaseException:
        writer._resync = True
        raise
    return writer.commit(prepared, positions)


async def submit_many(
    writer: ExecutionWriter, commands: Sequence[Command], **ids: str | None
) -> tuple[ExecutionState, asyncio.Task[list[Position]]]:
    """``writer.execute_many`` in two halves: decided now, acknowledged later.

    Returns once ``commands`` are decided over the running state (``InvalidCommand``
    and every other refusal are raised here, nothing sent): the state they lead to, and
    a task that appends them and returns one position per command once Kafka
    acknowledged them. The writer's lock stays held until then, so the writer's next
    command is decided after this batch is adopted (or failed: the writer then
    re-takes ownership first, as after any failed append). Await the task.
    """
    started = time.perf_counter()
    await writer.lock.acquire()
    try:
        prepared = await writer.prepare(commands, **ids)
    except BaseException:
        writer.lock.release()
        record_commands([commands], time.perf_counter() - started, ok=False)
        raise

    async def append() -> list[Position]:
        ok = False
        try:
            positions = await _send(writer, prepared)
            ok = True
            return positions
        finally:
            writer.lock.release()
            record_commands([commands], time.perf_counter() - started, ok=ok)

    return prepared.state, asyncio.create_task(append(), name=f"append {writer.execution_id}")
