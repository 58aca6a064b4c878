"""A checkpoint's data when it was stored as a chain of deltas (``commands._deltas``).

A ``CheckpointSaved`` whose ``delta_base`` is set holds a delta against that earlier
checkpoint's data, which may itself be a delta, back to one stored whole (at sequence
``delta_from``). Readers gather the execution's applied ``CheckpointSaved`` events
from ``delta_from`` to the checkpoint (:func:`chain_range`), pick the chain out of
them (:func:`chain_of`) and apply it from the whole copy on (:func:`chain_bytes`).
Pure: the caller fetches blobs and data keys (``orchestrator.state.sealed``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from orchestrator.events.catalogue import CheckpointSaved
from orchestrator.events.envelope import Envelope
from orchestrator.events.errors import UserDataError
from orchestrator.events.fold import Outcome, step
from orchestrator.events.state import ExecutionState
from orchestrator.events.userdata import UserData, user_data_bytes


class BrokenChain(UserDataError):
    """A delta whose base is not among the execution's applied checkpoints."""


def chain_range(saved: CheckpointSaved, sequence: int) -> tuple[int, int]:
    """The sequences of the checkpoint events a reader needs for ``saved`` (at ``sequence``)."""
    return (sequence if saved.delta_from is None else saved.delta_from), sequence


def applied_checkpoints(events: Iterable[Envelope]) -> list[CheckpointSaved]:
    """The ``CheckpointSaved`` payloads the fold applies among one execution's events (in
    log order): duplicates and fenced-off writes are not part of any chain."""
    state: ExecutionState | None = None
    out: list[CheckpointSaved] = []
    for envelope in events:
        result = step(state, envelope)
        state = result.state
        if result.outcome is Outcome.APPLIED and isinstance(envelope.payload, CheckpointSaved):
            out.append(envelope.payload)
    return out


def chain_of(saved: Iterable[CheckpointSaved], checkpoint_id: str) -> list[CheckpointSaved]:
    """The checkpoints whose data makes ``checkpoint_id``'s: the whole one first, each
    next a delta against the one before; ``BrokenChain`` if a base is missing."""
    by_id = {p.checkpoint_id: p for p in saved}
    out: list[CheckpointSaved] = []
    current = by_id.get(checkpoint_id)
    while current is not None and len(out) <= len(by_id):
        out.append(current)
        if current.delta_base is None:
            out.reverse()
            return out
        current = by_id.get(current.delta_base)
    raise BrokenChain(f"checkpoint {checkpoint_id}: the base of its delta is not in the archive")


def chain_bytes(
    chain: list[UserData], open_body: Callable[[UserData, bytes | None], bytes]
) -> bytes:
    """The JSON bytes of the last value of ``chain``: ``open_body(value, base)`` reads one
    link (``user_data_bytes`` with the caller's blob store, keys and limit)."""
    raw: bytes | None = None
    for value in chain:
        raw = open_body(value, raw)
    if raw is None:
        raise BrokenChain("an empty chain of checkpoint data")
    return raw


def plain_chain_bytes(chain: list[UserData], max_bytes: int | None = None) -> bytes:
    """:func:`chain_bytes` where every link is inline and not sealed (no I/O, no keys)."""

    def read(value: UserData, base: bytes | None) -> bytes:
        return user_data_bytes(value, None, base=base, max_bytes=max_bytes)

    return chain_bytes(chain, read)
