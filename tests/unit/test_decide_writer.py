"""``ExecutionWriter`` without services: an in-memory log, leases and read model.

What the integration tests cannot provoke on demand: a failed append (the writer must
re-take ownership before writing again) and a lease lost while renewing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.commands import (
    CreateExecution,
    ExecutionWriter,
    InMemoryReadModel,
    LeaseLost,
    ReadModelTimeout,
    ScheduleTask,
    StartTask,
    StartValidation,
    SucceedValidation,
    WriterSettings,
    execute_together,
)
from orchestrator.commands.leases import Lease
from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.errors import LogError


class MemoryLog:
    """Appends to a list and feeds the read model, like a log with a live projection."""

    def __init__(self, read_model: InMemoryReadModel, *, project: bool = True) -> None:
        self.read_model = read_model
        self.project = project
        self.records: list[Envelope] = []
        self.calls = 0
        self.fail_next = False

    async def append_batch(
        self, envelopes: Sequence[Envelope], topic: str | None = None
    ) -> list[Position]:
        self.calls += 1
        if self.fail_next:
            self.fail_next = False
            self.records.append(envelopes[0])  # half the batch landed, then the error
            await self._feed(len(self.records) - 1)
            raise LogError("broker went away", retriable=True)
        positions = []
        for envelope in envelopes:
            self.records.append(envelope)
            positions.append(await self._feed(len(self.records) - 1))
        return positions

    async def _feed(self, offset: int) -> Position:
        position = Position("pipeline", 0, offset)
        if self.project:
            await self.read_model.feed(position, self.records[offset])
        return position

    async def end_offsets(self, topic: str | None = None) -> dict[int, int]:
        return {0: len(self.records)}


class MemoryLeases:
    """Leases with the LeaseStore's rules (new tenure = epoch + 1), on the local clock."""

    def __init__(self) -> None:
        self.rows: dict[str, Lease] = {}

    async def acquire(
        self, name: str, holder: str, ttl: float, *, min_epoch: int = 0
    ) -> Lease | None:
        now = datetime.now(UTC)
        row = self.rows.get(name)
        if row is not None and row.holder not in ("", holder) and row.expires_at > now:
            return None
        epoch = max((row.epoch if row else 0) + 1, min_epoch)
        lease = Lease(name, holder, epoch, now + timedelta(seconds=ttl), now, ttl)
        self.rows[name] = lease
        return lease

    async def renew(self, lease: Lease, ttl: float | None = None) -> Lease:
        row = self.rows.get(lease.name)
        if row is None or (row.holder, row.epoch) != (lease.holder, lease.epoch):
            raise LeaseLost(lease.name, lease.holder, lease.epoch)
        renewed = replace(row, expires_at=datetime.now(UTC) + timedelta(seconds=lease.ttl))
        self.rows[lease.name] = renewed
        return renewed

    async def release(self, lease: Lease) -> bool:
        row = self.rows.get(lease.name)
        if row is None or row.epoch != lease.epoch:
            return False
        self.rows[lease.name] = replace(row, holder="")
        return True

    async def current(self, name: str) -> Lease | None:
        row = self.rows.get(name)
        return row if row is not None and row.holder else None


def _writer(
    log: MemoryLog, leases: MemoryLeases, node: str = "node-a", **settings: float
) -> ExecutionWriter:
    return ExecutionWriter(
        "exec_1",
        node_id=node,
        log=log,
        leases=leases,
        read_model=log.read_model,
        settings=WriterSettings(read_model_timeout=0.5, **settings),
    )


async def _created(writer: ExecutionWriter) -> None:
    await writer.create(CreateExecution(execution_id="exec_1", pipeline_id="p", tasks=("t",)))
    await writer.execute_many([StartValidation(), SucceedValidation()])


async def test_failed_append_makes_the_writer_take_ownership_again() -> None:
    log, leases = MemoryLog(InMemoryReadModel()), MemoryLeases()
    writer = _writer(log, leases)
    await _created(writer)
    log.fail_next = True
    with pytest.raises(LogError):
        await writer.execute_many([ScheduleTask(task_id="t"), StartTask(task_id="t")])
    # What landed is unknown to the writer; it re-takes ownership and reads the truth.
    await writer.execute(StartTask(task_id="t"))
    assert writer.epoch == 2
    kinds = [(e.event_type, e.sequence, e.epoch) for e in log.records[3:]]
    assert kinds == [
        ("TaskScheduled", 4, 1),
        ("ExecutionOwnershipTaken", None, 2),
        ("TaskStarted", 5, 2),
    ]
    assert writer.state == await log.read_model.load_execution("exec_1")


async def test_lost_lease_refuses_commands_and_writes_nothing() -> None:
    log, leases = MemoryLog(InMemoryReadModel()), MemoryLeases()
    writer = _writer(log, leases, lease_ttl=0.3, renew_interval=0.05)
    await _created(writer)
    leases.rows[writer.lease_name] = replace(leases.rows[writer.lease_name], epoch=7)  # stolen
    await asyncio.sleep(0.15)  # the next renewal notices
    assert writer.lost is not None
    before = len(log.records)
    with pytest.raises(LeaseLost):
        await writer.execute(ScheduleTask(task_id="t"))
    assert len(log.records) == before
    await writer.close()


async def test_takeover_waits_for_the_read_model() -> None:
    log, leases = MemoryLog(InMemoryReadModel()), MemoryLeases()
    first = _writer(log, leases)
    await _created(first)
    await first.close()
    log.project = False  # the projection stops
    with pytest.raises(ReadModelTimeout, match="is the projection processor running"):
        await _writer(log, leases, "node-b").open()


async def test_batches_of_several_executions_go_in_one_append() -> None:
    log, leases = MemoryLog(InMemoryReadModel()), MemoryLeases()
    a = _writer(log, leases)
    b = ExecutionWriter(
        "exec_2", node_id="node-a", log=log, leases=leases, read_model=log.read_model
    )
    await _created(a)
    await b.create(CreateExecution(execution_id="exec_2", pipeline_id="p", tasks=("u",)))
    await b.execute_many([StartValidation(), SucceedValidation()])
    calls = log.calls
    positions = await execute_together(
        [(a, [ScheduleTask(task_id="t")]), (b, [ScheduleTask(task_id="u"), StartTask(task_id="u")])]
    )
    assert log.calls == calls + 1
    assert [len(p) for p in positions] == [1, 2]
    assert a.state.tasks["t"].status == "scheduled" and b.state.tasks["u"].status == "running"
