"""The folded state: an execution with its tasks, and a shared-state namespace.

Shaped like the seed's "Pipeline State", "Task State" and "Shared State". Values are
immutable; the fold returns new objects. User data is held decoded (JSON values), a
claim-checked value as its ``{"$blob": ...}`` marker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class LazyIds:
    """Event ids read only when first asked for: ``load`` returns them, or ``None`` when
    they cannot be had (a damaged snapshot section: the ids are then unknown)."""

    __slots__ = ("_ids", "_load", "count")

    def __init__(self, count: int, load: Callable[[], list[str] | None]) -> None:
        self.count = count
        self._load: Callable[[], list[str] | None] | None = load
        self._ids: list[str] | None = None

    def ids(self) -> list[str] | None:
        if self._load is not None:
            loaded = self._load()
            self._ids = loaded if loaded is not None and len(loaded) == self.count else None
            self._load = None
        return self._ids


class AppliedIds:
    """The event ids of an execution's applied sequenced events, by sequence.

    What lets the fold tell a duplicate (the same ``event_id`` again) from another
    record claiming a sequence already taken. Successive states share one append-only
    list, each seeing its own prefix (``n`` ids after ``base``), so a fold appends in
    O(1); folding a different event on an older state copies the prefix first. A state
    rebuilt from a snapshot or a table row knows no ids (``base`` = its last sequence)
    until a reader supplies them (the processor loads them from the archive). A
    snapshot's ids come as a :class:`LazyIds` head, read only when the fold meets a
    sequence they cover (a re-delivered record), so a restore does not decode them.
    """

    __slots__ = ("_base", "_head", "_hn", "_ids", "_n")

    def __init__(self, ids: list[str] | None = None, base: int = 0) -> None:
        self._ids: list[str] = [] if ids is None else ids
        self._base = base
        self._n = len(self._ids)
        self._head: LazyIds | None = None
        self._hn = 0

    @classmethod
    def lazy(cls, base: int, head: LazyIds) -> AppliedIds:
        """The ids of sequences ``base + 1 ..`` ``base + head.count``, read when needed."""
        out = cls(None, base)
        out._head, out._hn, out._n = head, head.count, head.count
        return out

    def get(self, sequence: int) -> str | None:
        """The event id applied at ``sequence``, or ``None`` if this state does not know it."""
        index = sequence - self._base - 1
        if 0 <= index < self._n:
            if index >= self._hn:
                return self._ids[index - self._hn]
            assert self._head is not None
            head = self._head.ids()
            return None if head is None else head[index]
        return None

    def add(self, sequence: int, event_id: str) -> AppliedIds:
        """These ids plus ``event_id`` applied at ``sequence`` (the next one)."""
        if sequence != self._base + self._n + 1:
            return AppliedIds([event_id], sequence - 1)
        ids, used = self._ids, self._n - self._hn
        if len(ids) != used:
            ids = ids[:used]
        ids.append(event_id)
        out = AppliedIds.__new__(AppliedIds)
        out._ids, out._base, out._n = ids, self._base, self._n + 1
        out._head, out._hn = self._head, self._hn
        return out

    def known_ids(self) -> tuple[int, list[str]]:
        """``(base, ids)``: the ids of sequences ``base + 1 ..`` that these hold, in order
        (a copy; a lazy head that cannot be read leaves only the ids after it)."""
        tail = self._ids[: self._n - self._hn]
        if self._head is None:
            return self._base, tail
        head = self._head.ids()
        if head is None:
            return self._base + self._hn, tail
        return self._base, head + tail

    def tail(self, count: int) -> tuple[int, list[str]]:
        """``(base, ids)`` of at most the last ``count`` sequences these hold (a copy of
        those alone: a snapshot keeps a window, and copying every id of a long history
        at each snapshot would cost what the window saves)."""
        used = self._n - self._hn
        if count <= used:
            return self._base + self._n - count, self._ids[used - count : used]
        base, ids = self.known_ids()
        if len(ids) > count:
            base, ids = base + len(ids) - count, ids[len(ids) - count :]
        return base, ids

    def known(self) -> range:
        """The sequences whose ids these hold."""
        base, ids = self.known_ids()
        return range(base + 1, base + len(ids) + 1)

    def ids(self) -> list[str]:
        """The ids of the sequences :meth:`known` covers, in order (a copy)."""
        return self.known_ids()[1]

    def __len__(self) -> int:
        return self._n

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AppliedIds):
            return NotImplemented
        return self.known_ids() == other.known_ids()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"AppliedIds(sequences {self._base + 1}..{self._base + self._n})"

    def __deepcopy__(self, memo: dict[int, Any]) -> AppliedIds:
        base, ids = self.known_ids()
        return AppliedIds(ids, base)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskState:
    """One task of an execution (the seed's ``task_state``)."""

    task_id: str
    status: str = "pending"
    attempts: int = 0
    depends_on: tuple[str, ...] = ()
    started_at: datetime | None = None
    completed_at: datetime | None = None
    inputs: Any = None
    outputs: Any = None
    metadata: Any = None
    execution_details: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    retryable: bool | None = None
    retry_delay_seconds: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointRef:
    """A checkpoint as listed in the pipeline state (``checkpoints``)."""

    checkpoint_id: str
    name: str
    task_id: str | None
    timestamp: datetime
    sequence: int
    progress: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionState:
    """One execution of a pipeline (the seed's pipeline state), plus fencing fields."""

    execution_id: str
    pipeline_id: str
    status: str = "initialized"
    epoch: int = 0
    owner: str | None = None
    last_sequence: int = 0
    created_at: datetime | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None
    progress: float = 0.0
    current_task: str | None = None
    completed_tasks: tuple[str, ...] = ()
    pending_tasks: tuple[str, ...] = ()
    context: Mapping[str, Any] = field(default_factory=dict)
    checkpoints: tuple[CheckpointRef, ...] = ()
    tasks: Mapping[str, TaskState] = field(default_factory=dict)
    error: str | None = None
    outputs: Any = None
    forked_from: str | None = None
    fork_sequence: int | None = None
    root_execution_id: str | None = None
    applied: AppliedIds = field(default_factory=AppliedIds, compare=False, repr=False)
    """The ids of the events applied (bookkeeping of the fold, not part of the state:
    equality, snapshots and read models leave it out)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedVariable:
    """A shared variable (the seed's ``variables`` entry); ``deleted`` keeps its version."""

    name: str
    type: str
    value: Any
    immutable: bool = False
    updated_by: str | None = None
    updated_at: datetime | None = None
    version: int = 1
    deleted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NamespaceState:
    """The shared variables of one namespace."""

    namespace: str
    variables: Mapping[str, SharedVariable] = field(default_factory=dict)


def state_dict(state: ExecutionState) -> dict[str, Any]:
    """``dataclasses.asdict`` of a state without the fold's bookkeeping (``applied``)."""
    out = dataclasses.asdict(state)
    out.pop("applied", None)
    return out
