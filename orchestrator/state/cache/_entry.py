"""A cached value and what it reflects, and its bytes in the shared levels (L2, L3).

Every value carries the read model's applied offsets (``watermarks``: next offset per
partition, read *before* the value, so they never claim more than the value holds),
a ``version`` that grows with every change the log applies to the key, the positions
a causal session learns from it (``reflects``) and when it was fetched from the read
model (wall clock, comparable across processes). Readers use these to refuse an entry
that is too old for them; nothing trusts an entry's position blindly.

Wire form: one JSON header line, then the kind's body bytes (never pickle: the shared
levels are readable by every process that reaches them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from orchestrator.events import Position

T = TypeVar("T")
Watermarks = Mapping[tuple[str, int], int]


@dataclass(frozen=True, slots=True)
class Cached(Generic[T]):
    """One key's value as the read model held it at ``watermarks``."""

    value: T
    version: int
    watermarks: Watermarks
    reflects: tuple[Position, ...]
    fetched_at: float
    size: int = 0


@dataclass(frozen=True, slots=True)
class Header:
    """An entry's header: everything but the value (checked before decoding the body)."""

    version: int
    watermarks: Watermarks
    reflects: tuple[Position, ...]
    fetched_at: float


def encode_entry(header: Header, body: bytes) -> bytes:
    """The header line and the body, as stored in L2 and L3."""
    head = {
        "v": header.version,
        "w": [[t, p, o] for (t, p), o in sorted(header.watermarks.items())],
        "r": [p.token() for p in header.reflects],
        "f": header.fetched_at,
    }
    return json.dumps(head, separators=(",", ":")).encode() + b"\n" + body


def decode_entry(data: bytes) -> tuple[Header, bytes]:
    """The header and the body bytes; ``ValueError`` for anything else."""
    line, sep, body = data.partition(b"\n")
    if not sep:
        raise ValueError("cache entry without a header line")
    head: dict[str, Any] = json.loads(line)
    header = Header(
        version=int(head["v"]),
        watermarks={(str(t), int(p)): int(o) for t, p, o in head["w"]},
        reflects=tuple(Position.parse(tok) for tok in head["r"]),
        fetched_at=float(head["f"]),
    )
    return header, body


def header_of(entry: Cached[Any]) -> Header:
    return Header(entry.version, entry.watermarks, entry.reflects, entry.fetched_at)
