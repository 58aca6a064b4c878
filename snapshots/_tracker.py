"""The snapshotter's pure core: per-execution fold, snapshot triggers, low watermark.

No I/O here: the runtime (``snapshots.snapshotter``) feeds it decoded records, writes
the snapshots it asks for, and commits the watermark it computes. Kept apart so the
crash-safety rule is testable on its own:

    committed offset of a partition = min(first offset not covered by a snapshot, over
    every execution of that partition held in memory), or the next offset to read
    when every execution is covered.

An execution is *dirty* from the first event that changed its state after its last
snapshot until a snapshot covers it; only dirty executions hold the watermark back.
Events that change nothing (duplicates, zombie writes) do not make it dirty: a
rebuild from the snapshot folds them to the same state. Clean states are kept in a
bounded LRU only to spare a store read when the execution's next event comes; of
those, finished executions (terminal status, which rarely hear again) are held
``finished_cache`` at most, so what stays in memory follows the executions in flight,
not the history folded.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.events import Envelope, ExecutionState, Position, TaskCompleted, step
from orchestrator.snapshots.policy import TERMINAL_STATUSES, SnapshotPolicy
from orchestrator.snapshots.writer import PendingSnapshot

TP = tuple[str, int]


@dataclass(slots=True)
class Entry:
    """What the snapshotter holds for one execution."""

    execution_id: str
    tp: TP
    state: ExecutionState | None
    covered_offset: int = -1
    """Events at or below this offset are in the last snapshot (taken or pending)."""
    snapshot_sequence: int = 0
    snapshot_occurred_at: datetime | None = None
    first_uncovered: int | None = None
    """Offset of the first state-changing event since the last snapshot (None: clean)."""
    dirty_since: float | None = None
    last_position: Position | None = None
    last_occurred_at: datetime | None = None
    pending: list[PendingSnapshot] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


class SnapshotTracker:
    """Folds execution events, decides snapshots, computes committable offsets."""

    def __init__(
        self,
        policy: SnapshotPolicy,
        *,
        clean_cache: int = 10_000,
        finished_cache: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.clean_cache = clean_cache
        self.finished_cache = finished_cache
        self._clock = clock
        self._dirty: dict[str, Entry] = {}
        self._clean: OrderedDict[str, Entry] = OrderedDict()
        self._finished: OrderedDict[str, None] = OrderedDict()
        """Clean entries in a terminal status, oldest first (trimmed first)."""
        self.skipped_covered = 0

    # --- what is held --------------------------------------------------------------

    def knows(self, execution_id: str) -> bool:
        return execution_id in self._dirty or execution_id in self._clean

    @property
    def dirty_count(self) -> int:
        return len(self._dirty)

    @property
    def clean_count(self) -> int:
        return len(self._clean)

    def entry(self, execution_id: str) -> Entry | None:
        return self._dirty.get(execution_id) or self._clean.get(execution_id)

    def adopt(
        self,
        execution_id: str,
        tp: TP,
        state: ExecutionState | None,
        *,
        covered: Position | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        """Start holding an execution from its latest snapshot (or from nothing)."""
        entry = Entry(
            execution_id=execution_id,
            tp=tp,
            state=state,
            covered_offset=-1 if covered is None else covered.offset,
            snapshot_sequence=0 if state is None else state.last_sequence,
            snapshot_occurred_at=occurred_at,
            last_position=covered,
            last_occurred_at=occurred_at,
        )
        self._clean[execution_id] = entry  # trimmed at the batch's end, not before its fold

    def adopt_unsnapshotted(
        self,
        execution_id: str,
        tp: TP,
        state: ExecutionState,
        position: Position,
        occurred_at: datetime | None,
        first_offset: int,
    ) -> None:
        """Hold a state rebuilt without a snapshot (from the archive): snapshot it now,
        so no later restart has to rebuild it that way again."""
        entry = Entry(execution_id=execution_id, tp=tp, state=state)
        entry.first_uncovered, entry.dirty_since = first_offset, self._clock()
        entry.last_position, entry.last_occurred_at = position, occurred_at
        self._dirty[execution_id] = entry
        self._mark(entry, "rebuilt")

    # --- folding -------------------------------------------------------------------

    def fold(self, position: Position, envelope: Envelope) -> None:
        """Fold one event of a held execution (``adopt`` it first)."""
        eid = envelope.execution_id or ""
        entry = self._dirty.get(eid)
        if entry is None:
            entry = self._clean.pop(eid)
            self._clean[eid] = entry  # most recently used
        if position.offset <= entry.covered_offset:
            self.skipped_covered += 1
            return
        before = entry.state
        result = step(before, envelope)
        entry.last_position, entry.last_occurred_at = position, envelope.occurred_at
        if result.state is before:
            return
        entry.state = result.state
        if entry.first_uncovered is None:
            entry.first_uncovered, entry.dirty_since = position.offset, self._clock()
            self._clean.pop(eid, None)
            self._dirty[eid] = entry
        reason = self._trigger(entry, before, envelope)
        if reason is not None:
            self._mark(entry, reason)

    def _trigger(
        self, entry: Entry, before: ExecutionState | None, envelope: Envelope
    ) -> str | None:
        state, policy = entry.state, self.policy
        assert state is not None
        if state.last_sequence - entry.snapshot_sequence >= policy.frequency:
            return "frequency"
        if (
            policy.on_terminal
            and state.status in TERMINAL_STATUSES
            and (before is None or before.status != state.status)
        ):
            return "terminal"
        payload = envelope.payload
        if isinstance(payload, TaskCompleted) and state.tasks.get(payload.task_id) is not None:
            if payload.task_id in policy.on_success_tasks:
                return "on_success"
            if payload.task_id in policy.after_tasks:
                last = entry.snapshot_occurred_at
                since = None if last is None else (envelope.occurred_at - last).total_seconds()
                if since is None or since >= policy.min_interval:
                    return "after_task"
        return None

    def _mark(self, entry: Entry, reason: str) -> None:
        state, position = entry.state, entry.last_position
        assert state is not None and position is not None
        entry.pending.append(PendingSnapshot(state, position, entry.last_occurred_at))
        entry.reasons.append(reason)
        entry.covered_offset = position.offset
        entry.snapshot_sequence = state.last_sequence
        entry.snapshot_occurred_at = entry.last_occurred_at
        entry.first_uncovered = entry.dirty_since = None

    # --- a batch's end -------------------------------------------------------------

    def take_pending(self) -> list[PendingSnapshot]:
        """Snapshots to write now: those triggered by events, plus the periodic ones."""
        now = self._clock()
        interval = self.policy.interval
        pending: list[PendingSnapshot] = []
        for entry in self._dirty.values():
            if (
                interval is not None
                and entry.dirty_since is not None
                and now - entry.dirty_since >= interval
            ):
                self._mark(entry, "periodic")
            pending.extend(entry.pending)
        return pending

    def reasons(self) -> dict[str, int]:
        """How many pending snapshots each trigger asked for (for logs and metrics)."""
        counts: dict[str, int] = {}
        for entry in self._dirty.values():
            for reason in entry.reasons:
                counts[reason] = counts.get(reason, 0) + 1
        return counts

    def committed(self) -> None:
        """The pending snapshots and the watermark are committed: covered executions
        become clean."""
        for eid in [eid for eid, e in self._dirty.items() if e.pending or e.reasons]:
            entry = self._dirty[eid]
            entry.pending.clear()
            entry.reasons.clear()
            if entry.first_uncovered is None:
                del self._dirty[eid]
                self._clean[eid] = entry
                if entry.state is not None and entry.state.status in TERMINAL_STATUSES:
                    self._finished[eid] = None
                    self._finished.move_to_end(eid)
        self._trim()

    def watermark(self, tp: TP, next_offset: int) -> int:
        """The offset a restart must read ``tp`` from so that no held execution misses
        an event its last snapshot does not cover."""
        low = next_offset
        for entry in self._dirty.values():
            if entry.tp == tp and entry.first_uncovered is not None:
                low = min(low, entry.first_uncovered)
        return low

    def release(self, tps: Iterable[TP]) -> None:
        """Forget every execution of these partitions (revoked, or fenced off)."""
        gone = set(tps)
        for table in (self._dirty, self._clean):
            for eid in [eid for eid, e in table.items() if e.tp in gone]:
                del table[eid]
                self._finished.pop(eid, None)

    def _trim(self) -> None:
        while len(self._finished) > self.finished_cache:
            eid, _ = self._finished.popitem(last=False)
            entry = self._clean.get(eid)
            if entry is not None and entry.state is not None:
                if entry.state.status in TERMINAL_STATUSES:
                    del self._clean[eid]
        while len(self._clean) > self.clean_cache:
            self._clean.popitem(last=False)
