"""``MemoryReadModel``: the memory backend's read models, folded as the log is appended.

The write side's ``ReadModel`` port plus the queries ``orchestrator.state`` makes
(checkpoints, the archive of an execution's events), over a ``MemoryEventLog``. Each
appended record is decoded from its bytes by the same codec and folded by the one fold
(``events.fold.step`` / ``step_shared``) before the append returns, so a read always
sees the writes before it ("strong" at no cost). A record that does not decode is a
dead letter (kept with its reason; the partition keeps flowing).

What it keeps, and what ``max_bytes`` may evict (``eviction_policy: lru``):

* the log itself is history: never evicted here (``MemoryEventLog`` refuses appends
  beyond its bound instead);
* the archive is the list of an execution's offsets in the log: small, never evicted;
* folded states and decoded events of *finished* executions (completed, failed,
  cancelled) are a cache: when the log's bytes plus the cached executions' (estimated
  as the bytes of their encoded events) exceed ``max_bytes``, the least recently used
  finished executions' are dropped, and decoded and folded again from the log when
  next read. Running executions stay.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from orchestrator.commands import ReadModelTimeout, fold_shared_into
from orchestrator.events import (
    PIPELINE_MACHINE,
    CheckpointSaved,
    CheckpointsDeleted,
    DecodeError,
    Envelope,
    EventCodec,
    ExecutionState,
    MemoryEventLog,
    MemoryRecord,
    NamespaceState,
    Outcome,
    Position,
    UserData,
    applied_checkpoints,
    chain_of,
    decode_user_data,
    step,
)
from orchestrator.state.readmodel import CheckpointRow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Settings:
    shared_topic: str


class _Execution:
    """What the read model holds per execution: the archive and the cached state."""

    __slots__ = ("bytes", "envelopes", "offsets", "partition", "state")

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.offsets: list[int] = []
        self.bytes = 0
        self.state: ExecutionState | None = None
        self.envelopes: list[Envelope] | None = []  # decoded archive; None once evicted


class MemoryReadModel:
    """See the module docstring; built over ``log`` and subscribed to it."""

    def __init__(
        self, log: MemoryEventLog, codec: EventCodec, *, max_bytes: int | None = None
    ) -> None:
        self._log = log
        self.codec = codec
        self.max_bytes = max_bytes
        self._executions: dict[str, _Execution] = {}
        self._cached: OrderedDict[str, int] = OrderedDict()  # finished, folded: LRU order
        self._cached_bytes = 0
        self._namespaces: dict[str, NamespaceState] = {}
        # id -> execution -> its listed save of the id; several executions may save a
        # hand-given id, and the id alone names the newest save (the last entry).
        self._checkpoints: dict[str, dict[str, Position]] = {}
        self._applied: dict[tuple[str, int], int] = {}
        self._changed = asyncio.Event()
        self.dead_letters: list[tuple[Position, str]] = []
        self.evictions = 0
        self.rebuilds = 0
        log.subscribe(self._apply)

    # --- folding ---------------------------------------------------------------------

    def _apply(self, record: MemoryRecord) -> None:
        p = record.position
        try:
            envelope = self.codec.decode(record.value)
        except DecodeError as exc:
            self.dead_letters.append((p, exc.reason))
            log.warning("memory backend: dead letter at %s: %s", p.token(), exc.reason)
        else:
            if envelope.execution_id is None:
                fold_shared_into(self._namespaces, envelope)
            else:
                self._fold(p, len(record.value), envelope)
        self._applied[(p.topic, p.partition)] = p.offset
        self._changed.set()

    def _fold(self, p: Position, size: int, envelope: Envelope) -> None:
        assert envelope.execution_id is not None
        eid = envelope.execution_id
        entry = self._executions.get(eid)
        if entry is None:
            entry = self._executions[eid] = _Execution(p.partition)
        state = self._state_of(eid, entry)
        result = step(state, envelope)
        entry.offsets.append(p.offset)
        entry.bytes += size
        if entry.envelopes is not None:
            entry.envelopes.append(envelope)
        if result.state is not None:
            entry.state = result.state
        if result.outcome is Outcome.APPLIED:
            payload = envelope.payload
            if isinstance(payload, CheckpointSaved):
                saves = self._checkpoints.setdefault(payload.checkpoint_id, {})
                saves.pop(eid, None)  # saved again: now the newest
                saves[eid] = p
            elif isinstance(payload, CheckpointsDeleted):
                for gone in payload.checkpoint_ids:
                    saves = self._checkpoints.get(gone, {})
                    saves.pop(eid, None)  # this execution's only, never another's
                    if not saves:
                        self._checkpoints.pop(gone, None)
        self._account(eid, entry)

    def _state_of(self, eid: str, entry: _Execution) -> ExecutionState | None:
        """The folded state, folded again from the archive if it was evicted."""
        if entry.state is None and entry.offsets:
            self.rebuilds += 1
            entry.state = self._refold(entry, None)
        if eid in self._cached:
            self._cached.move_to_end(eid)
        return entry.state

    def _refold(self, entry: _Execution, max_sequence: int | None) -> ExecutionState | None:
        state: ExecutionState | None = None
        for envelope in self._archive(entry):
            if max_sequence is not None and (envelope.sequence or 0) > max_sequence:
                break
            state = step(state, envelope).state
        return state

    def _archive(self, entry: _Execution) -> list[Envelope]:
        """The execution's events, decoded again from the log if they were evicted."""
        if entry.envelopes is None:
            topic = self._log.topics.pipeline.name
            rows = self._log.records_of(topic, entry.partition)
            entry.envelopes = [self.codec.decode(rows[offset].value) for offset in entry.offsets]
        return entry.envelopes

    def _account(self, eid: str, entry: _Execution) -> None:
        """Track finished states as evictable, and evict LRU ones above ``max_bytes``."""
        finished = entry.state is not None and entry.state.status in PIPELINE_MACHINE.terminal
        if finished and eid not in self._cached:
            self._cached[eid] = entry.bytes
            self._cached_bytes += entry.bytes
        elif finished:
            self._cached_bytes += entry.bytes - self._cached[eid]
            self._cached[eid] = entry.bytes
            self._cached.move_to_end(eid)
        elif eid in self._cached:  # a finished execution resumed: no longer evictable
            self._cached_bytes -= self._cached.pop(eid)
        self._evict()

    @property
    def size_bytes(self) -> int:
        """The log's bytes plus the cached finished states' (what ``max_bytes`` bounds)."""
        return self._log.size_bytes + self._cached_bytes

    def _evict(self) -> None:
        if self.max_bytes is None:
            return
        while self._cached and self.size_bytes > self.max_bytes:
            eid, size = self._cached.popitem(last=False)
            self._cached_bytes -= size
            entry = self._executions[eid]
            entry.state, entry.envelopes = None, None
            self.evictions += 1
            log.debug("memory backend: evicted the folded state of finished %s", eid)

    def cached(self, execution_id: str) -> bool:
        """Whether the folded state of ``execution_id`` is held now (not evicted)."""
        entry = self._executions.get(execution_id)
        return entry is not None and entry.state is not None

    # --- the ReadModel port ------------------------------------------------------------

    async def load_execution(self, execution_id: str) -> ExecutionState | None:
        entry = self._executions.get(execution_id)
        if entry is None:
            return None
        return self._state_of(execution_id, entry)

    async def load_namespace(self, namespace: str) -> NamespaceState:
        return self._namespaces.get(namespace) or NamespaceState(namespace=namespace)

    # --- what the state cache's source asks (as of ``PostgresReadModel``) ---------------

    @property
    def settings(self) -> _Settings:
        """The names the cache needs: the shared-state topic."""
        return _Settings(shared_topic=self._log.topics.shared.name)

    async def load_execution_entry(
        self, execution_id: str
    ) -> tuple[ExecutionState, Position | None] | None:
        """The execution's state and the position of the last event folded into it."""
        entry = self._executions.get(execution_id)
        state = None if entry is None else self._state_of(execution_id, entry)
        if entry is None or state is None:
            return None
        last = Position(self._log.topics.pipeline.name, entry.partition, entry.offsets[-1])
        return state, last

    async def watermarks(self) -> dict[tuple[str, int], int]:
        """The next offset to fold, per (topic, partition): every event before it is read."""
        return {key: offset + 1 for key, offset in self._applied.items()}

    async def wait_for(self, position: Position, timeout: float) -> None:  # noqa: ASYNC109
        key = (position.topic, position.partition)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout
        while self._applied.get(key, -1) < position.offset:
            left = give_up - loop.time()
            if left <= 0:
                raise ReadModelTimeout(position, timeout, applied=self._applied.get(key))
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                continue

    # --- the queries of orchestrator.state ----------------------------------------------

    def history(self, execution_id: str) -> list[tuple[Position, Envelope]]:
        """The execution's events with their positions, in log order (the archive)."""
        entry = self._executions.get(execution_id)
        if entry is None:
            return []
        topic = self._log.topics.pipeline.name
        events = self._archive(entry)
        return [
            (Position(topic, entry.partition, o), e)
            for o, e in zip(entry.offsets, events, strict=True)
        ]

    async def list_checkpoints(
        self, pipeline_id: str | None, execution_id: str | None
    ) -> list[CheckpointRow]:
        rows = [
            row
            for saves in self._checkpoints.values()
            for p in saves.values()
            if (row := self._row_at(p)) is not None
            and (pipeline_id is None or row.pipeline_id == pipeline_id)
            and (execution_id is None or row.execution_id == execution_id)
        ]
        if execution_id is not None:
            return sorted(rows, key=lambda r: r.sequence)
        return sorted(rows, key=lambda r: (r.created_at, r.execution_id, r.sequence))

    async def find_checkpoint(self, checkpoint_id: str) -> CheckpointRow | None:
        return self._row(checkpoint_id)

    async def checkpoint_chain(
        self, checkpoint_id: str, at: tuple[str, int] | None = None
    ) -> list[CheckpointSaved] | None:
        if at is None:
            found = self._event_of(checkpoint_id)
            if found is None:
                return None
            envelope = found[0]
            assert envelope.execution_id is not None and envelope.sequence is not None
            at = (envelope.execution_id, envelope.sequence)
        execution_id, upto = at
        events = [
            e for _, e in self.history(execution_id) if e.sequence is None or e.sequence <= upto
        ]
        applied = applied_checkpoints(events)
        if not applied or applied[-1].checkpoint_id != checkpoint_id:
            return None
        if applied[-1].delta_base is None:
            return [applied[-1]]
        return chain_of(applied, checkpoint_id)

    def _event_of(self, checkpoint_id: str) -> tuple[Envelope, CheckpointSaved] | None:
        saves = self._checkpoints.get(checkpoint_id)
        return None if not saves else self._event_at(next(reversed(saves.values())))

    def _event_at(self, p: Position) -> tuple[Envelope, CheckpointSaved]:
        envelope = self.codec.decode(self._log.records_of(p.topic, p.partition)[p.offset].value)
        assert isinstance(envelope.payload, CheckpointSaved)
        return envelope, envelope.payload

    def _row(self, checkpoint_id: str) -> CheckpointRow | None:
        saves = self._checkpoints.get(checkpoint_id)
        return None if not saves else self._row_at(next(reversed(saves.values())))

    def _row_at(self, position: Position) -> CheckpointRow:
        envelope, p = self._event_at(position)
        assert envelope.execution_id is not None and envelope.sequence is not None
        return CheckpointRow(
            id=p.checkpoint_id,
            name=p.name,
            pipeline_id=envelope.pipeline_id or "",
            execution_id=envelope.execution_id,
            task_id=p.task_id,
            sequence=envelope.sequence,
            progress=p.progress,
            created_at=envelope.occurred_at,
            metadata=_json(p.metadata),
        )


def _json(value: UserData | None) -> Any:
    return None if value is None else decode_user_data(value)
