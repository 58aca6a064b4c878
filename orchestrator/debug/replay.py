"""Replay: an execution's state at any point of its history, or every step to it.

The debugging face of the history service (``events.History``): the state at a
target is the newest usable snapshot at or before it plus the events after it, folded
with ``events.fold.step``; events stream one at a time from the archive or from the log.
:meth:`Replayer.steps` yields, for each event, the state before and after it and the
fold's verdict, with what it changed (``diff``); ``start_sequence`` starts from the
snapshot before that sequence, so ``--diff --last 1000`` of a 100,000-event execution
reads ~1,100 events, not 100,000. The targets are ``events.Target``'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from datetime import datetime

from orchestrator.debug.diff import Change, diff
from orchestrator.debug.errors import HistoryNotFound, PartitionUnknown
from orchestrator.events import (
    Envelope,
    EventArchive,
    ExecutionState,
    History,
    LogPartitionUnknown,
    LogReader,
    NothingToRestore,
    Outcome,
    Position,
    SnapshotBases,
    Source,
    Target,
    UnknownCheckpoint,
)
from orchestrator.state import CheckpointNotFound

__all__ = ["ReplayStep", "Replayed", "Replayer", "Source", "Target"]


@dataclass(frozen=True, slots=True)
class ReplayStep:
    """One event of the history: the state before and after it, and the fold's verdict."""

    position: Position
    event: Envelope
    outcome: Outcome
    reason: str | None
    before: ExecutionState | None
    after: ExecutionState | None

    def changes(self) -> Iterator[Change]:
        """What the event changed (nothing, for a duplicate or a zombie write)."""
        return diff(self.before, self.after)


@dataclass(frozen=True, slots=True)
class Replayed:
    """A replayed state and how it was obtained."""

    execution_id: str
    state: ExecutionState
    position: Position | None
    """Where the last event folded into ``state`` sits in the log."""
    snapshot_key: str | None
    """The snapshot it started from (``None``: from the first event)."""
    events_folded: int
    source: Source
    target: Target


class Replayer:
    """Replays executions from ``archive`` (or ``log``), starting from ``snapshots``
    (``snapshots.SnapshotBaseReader``), through one ``History``."""

    def __init__(
        self,
        archive: EventArchive,
        *,
        log: LogReader | None = None,
        snapshots: SnapshotBases | None = None,
    ) -> None:
        self.history = History(archive, snapshots=snapshots, log=log)

    @property
    def archive(self) -> EventArchive:
        return self.history.archive

    async def state(
        self, execution_id: str, target: Target | None = None, *, source: Source = "archive"
    ) -> Replayed:
        """The execution's state at ``target`` (default: latest)."""
        target = target or Target()
        with _translated(execution_id, target, source):
            got = await self.history.state(execution_id, target, source=source)
        return Replayed(
            execution_id,
            got.state,
            got.position,
            got.snapshot_key,
            got.events_folded,
            source,
            target,
        )

    async def steps(
        self,
        execution_id: str,
        target: Target | None = None,
        *,
        source: Source = "archive",
        start_sequence: int | None = None,
        start_time: datetime | None = None,
    ) -> AsyncGenerator[ReplayStep, None]:
        """Each event up to ``target`` with the state before and after it, streamed (see
        ``History.steps``)."""
        target = target or Target()
        steps = self.history.steps(
            execution_id,
            target,
            source=source,
            start_sequence=start_sequence,
            start_time=start_time,
        )
        with _translated(execution_id, target, source):
            async with contextlib.aclosing(steps) as stream:
                async for s in stream:
                    yield ReplayStep(s.position, s.event, s.outcome, s.reason, s.before, s.after)

    async def last_sequence(self, execution_id: str, target: Target | None = None) -> int:
        """The last sequence of the state at ``target`` (what ``--last N`` counts back from)."""
        return (await self.state(execution_id, target)).state.last_sequence


@contextlib.contextmanager
def _translated(execution_id: str, target: Target, source: Source) -> Iterator[None]:
    """The history service's errors as the debugger's."""
    try:
        yield
    except UnknownCheckpoint as exc:
        raise CheckpointNotFound(target.checkpoint or exc.checkpoint_id) from exc
    except LogPartitionUnknown as exc:
        raise PartitionUnknown(execution_id, exc.topic) from exc
    except NothingToRestore as exc:
        raise HistoryNotFound(execution_id, _describe(source)) from exc


def _describe(source: Source) -> str:
    return "event archive (execution_events)" if source == "archive" else "log"
