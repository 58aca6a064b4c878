"""``distributed.synchronization``: the one place that decides what a read must reflect.

Every read path (``StateManager``, ``checkpoint.list / restore``, the state cache, and
the query API through its ``Orchestrator-Session`` header) asks :meth:`SyncPolicy.need`
and obeys the :class:`ReadNeed` it returns:

* ``strong``: read-your-writes by position. The read reflects every position this
  process wrote (its writers, checkpoints, batches, shared-state writes) and the
  caller's explicit ``position``; it waits (up to ``read_timeout`` seconds, then
  ``ReadModelTimeout``) for the read model to apply them, and a cached value is served
  only if it was read after they were applied.
* ``causal``: a session. The read reflects the session's own writes and every position
  the session has seen: the positions its earlier reads reflected and the tokens it was
  handed (:meth:`Session.observe`: a :func:`session_token` from another process, or the
  API's ``Orchestrator-Session`` response header).
* ``eventual``: the read may lag, by at most ``replication.sync_interval`` when it is
  set: a cached value fetched longer ago than that is fetched again.

Whatever the strategy, one process never returns an older state of a key after a newer
one (the cache keeps the newest position it returned per key).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from orchestrator.events import Position, parse_session, session_token
from orchestrator.events import merge_positions as merge

Strategy = Literal["strong", "eventual", "causal"]
STRATEGIES: tuple[Strategy, ...] = ("strong", "eventual", "causal")
__all__ = [
    "SESSION_HEADER",
    "STRATEGIES",
    "ReadNeed",
    "Session",
    "Strategy",
    "SyncPolicy",
    "merge",
    "parse_session",
    "session_token",
]
SESSION_HEADER = "Orchestrator-Session"
"""The HTTP header that carries a causal session token into and out of the query API."""


@dataclass(slots=True)
class Session:
    """What a causal reader has seen and written; pass :meth:`token` to another process."""

    seen: dict[tuple[str, int], int] = field(default_factory=dict)

    def observe(self, positions: Iterable[Position | str] | Position | str) -> None:
        """Add positions (or tokens, or one session token) this session depends on."""
        items: Iterable[Position | str]
        items = [positions] if isinstance(positions, Position | str) else positions
        for item in items:
            for p in parse_session(item) if isinstance(item, str) else [item]:
                key = (p.topic, p.partition)
                if p.offset > self.seen.get(key, -1):
                    self.seen[key] = p.offset

    def positions(self) -> list[Position]:
        return [Position(t, p, o) for (t, p), o in sorted(self.seen.items())]

    def token(self) -> str:
        """This session's token (empty string: nothing seen yet)."""
        return session_token(self.positions())


@dataclass(frozen=True, slots=True)
class ReadNeed:
    """What one read must reflect: ``positions`` applied; a cached value no older than
    ``max_age`` seconds (None: its level's ttl); ``session`` learns what was read."""

    positions: tuple[Position, ...] = ()
    max_age: float | None = None
    session: Session | None = None
    avoid: tuple[Position, ...] = ()
    """Writes of this process a cached value must reflect (``invalidation.on_write``),
    not waited for: a read from the read model serves whatever it holds."""

    def satisfied_by(self, watermarks: Mapping[tuple[str, int], int]) -> bool:
        """Whether a value read when the read model had applied ``watermarks`` (next
        offset per partition) reflects every required position."""
        return all(
            watermarks.get((p.topic, p.partition), 0) > p.offset
            for p in (*self.positions, *self.avoid)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncPolicy:
    """``synchronization.strategy``, ``replication.sync_interval`` (seconds here),
    ``conflict_resolution`` and the wait deadline of strong and causal reads."""

    strategy: Strategy = "eventual"
    sync_interval: float | None = None
    conflict_resolution: str = "last_write_wins"
    read_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"synchronization.strategy must be one of {STRATEGIES}")

    def need(
        self,
        strategy: Strategy | None = None,
        *,
        process_writes: Iterable[Position] = (),
        own_writes: Iterable[Position] = (),
        session: Session | None = None,
        position: Position | str | None = None,
    ) -> ReadNeed:
        """The need of one read with ``strategy`` (None: the configured one).

        ``process_writes``: everything this process wrote (strong);
        ``own_writes``: what the reading session wrote (causal); ``position``: an
        explicit position the caller waits for, whatever the strategy."""
        mode = strategy or self.strategy
        if mode not in STRATEGIES:
            raise ValueError(f"consistency must be one of {STRATEGIES}, not {mode!r}")
        explicit = _positions(position)
        if mode == "strong":
            return ReadNeed(tuple(merge([*process_writes, *explicit])), None, None)
        if mode == "causal":
            session = session if session is not None else Session()
            session.observe(own_writes)
            return ReadNeed(tuple(merge([*session.positions(), *explicit])), None, session)
        return ReadNeed(tuple(explicit), self.sync_interval, None)


def _positions(value: Position | str | None) -> list[Position]:
    """An explicit position: a ``Position``, its token, or a session token."""
    if value is None:
        return []
    return [value] if isinstance(value, Position) else parse_session(value)
