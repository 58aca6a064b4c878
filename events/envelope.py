"""The envelope every event travels in, and the position token an append returns."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from orchestrator.events.catalogue import Payload


def _now() -> datetime:
    return datetime.now(UTC)


def uuid4_hex() -> str:
    """A random (version 4) UUID's 32 hex digits: ``uuid.uuid4().hex`` without building a
    ``UUID`` object (~3x faster, 9 -> 3 µs; one or two per event written)."""
    b = bytearray(os.urandom(16))
    b[6] = b[6] & 0x0F | 0x40  # version 4
    b[8] = b[8] & 0x3F | 0x80  # RFC 4122 variant
    return b.hex()


def _new_id() -> str:
    h = uuid4_hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """One event: who wrote it (``epoch``, ``producer``), where it sits, and its payload.

    ``sequence`` is per execution, gapless from 1; it is ``None`` only for control
    events (ownership) and shared-state events, which are ordered by the log alone.
    """

    execution_id: str | None
    pipeline_id: str | None
    sequence: int | None
    epoch: int
    payload: Payload
    producer: str = ""
    event_id: str = field(default_factory=_new_id)
    occurred_at: datetime = field(default_factory=_now)
    correlation_id: str | None = None
    causation_id: str | None = None

    @property
    def event_type(self) -> str:
        """The payload's record name, e.g. ``TaskCompleted``."""
        return self.payload.event_type

    def key(self) -> bytes:
        """The Kafka key: the execution id, or the namespace for shared-state events."""
        namespace = getattr(self.payload, "namespace", None)
        if self.execution_id is None and namespace is not None:
            return str(namespace).encode()
        return (self.execution_id or "").encode()


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where an event landed: a token a reader can wait on (read-your-writes)."""

    topic: str
    partition: int
    offset: int

    def token(self) -> str:
        """The position as a compact string, e.g. ``orchestrator.pipeline.events:3:1207``."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    @classmethod
    def parse(cls, token: str) -> Position:
        """Read a token made by :meth:`token`; a malformed one is a ``ValueError``."""
        topic, sep, rest = token.rpartition(":")
        topic2, sep2, partition = topic.rpartition(":")
        if not sep or not sep2 or not topic2:
            raise ValueError(f"malformed position token {token!r}: expected topic:partition:offset")
        try:
            return cls(topic2, int(partition), int(rest))
        except ValueError as exc:
            raise ValueError(f"malformed position token {token!r}: {exc}") from None


def merge_positions(positions: Iterable[Position]) -> list[Position]:
    """The highest offset per (topic, partition), sorted."""
    best: dict[tuple[str, int], int] = {}
    for p in positions:
        key = (p.topic, p.partition)
        if p.offset > best.get(key, -1):
            best[key] = p.offset
    return [Position(t, p, o) for (t, p), o in sorted(best.items())]


def session_token(positions: Iterable[Position]) -> str:
    """A causal session's token: the newest of ``positions`` per partition, ``,``-joined
    position tokens (what the API's ``Orchestrator-Session`` header carries)."""
    return ",".join(p.token() for p in merge_positions(positions))


def parse_session(token: str | None) -> list[Position]:
    """The positions of a :func:`session_token` or a single position token
    (``ValueError`` if malformed)."""
    if not token:
        return []
    return merge_positions(
        Position.parse(part.strip()) for part in token.split(",") if part.strip()
    )
