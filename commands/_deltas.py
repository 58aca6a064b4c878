"""Checkpoint data stored as deltas: what changed since the task's previous checkpoint.

A chat-like checkpoint grows by a message per step; stored whole each time, storage
grows with the square of the steps. The writer remembers the JSON bytes of the last
checkpoint it saved for each task (once its append was acknowledged: the checkpoint is
in the writer's state) and stores the next one as a delta against them
(``events.delta``), ``delta_base`` naming that checkpoint and ``delta_from`` the
sequence of the chain's whole copy. Every ``checkpoint_full_every``-th checkpoint of a
chain is stored whole, so a reader applies at most that many deltas; so is the first
one of a tenure (a new epoch forgets every base: a zombie's acknowledged events are
not in the fold), one whose value keeps ``exclude_fields`` out of compression (the
option still acts), one too large to hold (``MAX_BASE_BYTES``), one too small to
compress (``compress_threshold``: a delta's header would cost more than it saves), and
one whose data came already encoded (a fork's copy).

A delta is tried only where it pays: one that comes out larger than half of what a
whole copy of the value would take (the chain's whole copy's compression ratio, applied
to the new value) means the value shares little with its base (fresh data every step),
and zstd's dictionary pass cost twice a plain compression for nothing. The task's next
saves are then stored whole, 1, 2, 4 ... up to :data:`_MAX_SKIP` of them, before a
delta is tried again; a growing state's deltas always pay and never back off. Once a
task is backing off, a delta is tried again only if a quarter of 16 short samples of
the new value are found in its base (:func:`_shares`, a few µs against ~200-300 µs for
the delta of 10 KB that shares nothing): a value that still shares nothing counts as
one more miss without the attempt.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from orchestrator.commands.command_types import SaveCheckpoint
from orchestrator.commands.ports import UserDataSettings, encode_value
from orchestrator.events import MAX_BASE_BYTES, BlobStore, ExecutionState, UserData, json_bytes

if TYPE_CHECKING:
    from orchestrator.commands.writer import ExecutionWriter

C = TypeVar("C")

DEFAULT_FULL_EVERY = 100
"""A checkpoint stored whole after this many deltas: bounds a restore's work (applying
a delta to a 1 MB state takes ~1 ms) and the records it reads."""
_TASKS = 8  # bases kept per writer (the tasks that saved most recently)
_SCAN = 64  # the writer's newest checkpoints looked at to find the acknowledged ones
_MAX_SKIP = 32  # whole copies stored, at most, before a delta is tried again
_SAMPLES, _SAMPLE_BYTES = 16, 16  # what _shares looks for in the base


@dataclass(frozen=True, slots=True)
class _Base:
    checkpoint_id: str
    raw: bytes
    start: int | None  # the sequence of the chain's whole copy (None: this one, once sent)
    length: int  # deltas since the whole copy
    ratio: float = 1.0  # stored bytes per JSON byte of the chain's whole copy
    skip: int = 0  # whole copies still to store before trying a delta again
    misses: int = 0  # deltas in a row that did not pay


def _shares(raw: bytes, base: bytes) -> bool:
    """Whether at least a quarter of :data:`_SAMPLES` evenly spaced slices of ``raw`` occur
    in ``base``: a delta may pay (one pays when it is under half a whole copy, so about
    half of the value must be shared; a quarter of the samples is a generous bar)."""
    step = len(raw) // _SAMPLES
    if step < _SAMPLE_BYTES:
        return True
    need, found = _SAMPLES // 4, 0
    for at in range(0, step * _SAMPLES, step):
        if raw[at : at + _SAMPLE_BYTES] in base:
            found += 1
            if found >= need:
                return True
    return False


def _stored_size(data: UserData) -> int:
    return len(data.inline) if data.inline is not None else (data.ref.size if data.ref else 0)


class CheckpointBases:
    """One writer's bases: the last acknowledged checkpoint's JSON bytes, per task."""

    def __init__(self, full_every: int) -> None:
        self.full_every = full_every
        self.epoch = -1
        self._bases: OrderedDict[str | None, _Base] = OrderedDict()
        self._pending: dict[str, tuple[str | None, _Base | None]] = {}

    def _acknowledged(self, state: ExecutionState) -> None:
        """Pending encodings whose checkpoint is in the writer's state become bases."""
        if not self._pending:
            return
        found = [
            (ref.sequence, self._pending[ref.checkpoint_id])
            for ref in state.checkpoints[-_SCAN:]
            if ref.checkpoint_id in self._pending
        ]
        self._pending.clear()  # the rest were never sent, or sent in a batch that failed
        for sequence, (task_id, base) in found:  # oldest first: the newest wins
            if base is None:
                self._bases.pop(task_id, None)
                continue
            self._bases[task_id] = base if base.start is not None else replace(base, start=sequence)
            self._bases.move_to_end(task_id)
        while len(self._bases) > _TASKS:
            self._bases.popitem(last=False)

    async def encode(
        self,
        command: SaveCheckpoint,
        blob_store: BlobStore | None,
        settings: UserDataSettings,
        scope: str,
    ) -> SaveCheckpoint:
        """``command`` with its data encoded, as a delta where a base allows."""
        value = command.data
        key, task_id = command.checkpoint_id, command.task_id
        excluded = isinstance(value, dict) and any(k in value for k in settings.exclude_fields)
        if value is None or isinstance(value, UserData) or self.full_every <= 0 or excluded:
            self._pending[key] = (task_id, None)
            return command
        raw = json_bytes(value)
        base = self._bases.get(task_id)
        if len(raw) > MAX_BASE_BYTES:
            self._pending[key] = (task_id, None)
            return command
        small = len(raw) <= settings.compress_threshold  # a delta's frame would not pay
        skip, misses = (0, 0) if base is None else (max(0, base.skip - 1), base.misses)
        if not (
            small
            or base is None
            or base.start is None
            or base.skip > 0
            or base.length + 1 >= self.full_every
        ):
            if not base.misses or _shares(raw, base.raw):
                return await self._delta(command, raw, base, blob_store, settings, scope)
            misses += 1  # still nothing in common: one more miss, without the delta
            skip = min(_MAX_SKIP, 1 << (misses - 1))
        data = await encode_value(value, blob_store, settings, scope=scope, raw=raw)
        ratio = _stored_size(data) / max(1, len(raw))
        self._pending[key] = (task_id, _Base(key, raw, None, 0, ratio, skip, misses))
        return replace(command, data=data)

    async def _delta(
        self,
        command: SaveCheckpoint,
        raw: bytes,
        base: _Base,
        blob_store: BlobStore | None,
        settings: UserDataSettings,
        scope: str,
    ) -> SaveCheckpoint:
        """``command`` with its data stored as a delta against ``base``."""
        key, task_id = command.checkpoint_id, command.task_id
        data = await encode_value(raw, blob_store, settings, scope=scope, base=base.raw)
        paid = _stored_size(data) * 2 <= base.ratio * len(raw)
        misses = 0 if paid else base.misses + 1
        skip = 0 if paid else min(_MAX_SKIP, 1 << (misses - 1))
        after = _Base(key, raw, base.start, base.length + 1, base.ratio, skip, misses)
        self._pending[key] = (task_id, after)
        return replace(command, data=data, delta_base=base.checkpoint_id, delta_from=base.start)


_BASES: weakref.WeakKeyDictionary[Any, CheckpointBases] = weakref.WeakKeyDictionary()


async def encode_checkpoint(command: C, writer: ExecutionWriter) -> C:
    """A ``SaveCheckpoint``'s data encoded for ``writer`` (a delta where it can be); any
    other command as it is."""
    if not isinstance(command, SaveCheckpoint):
        return command
    bases = _BASES.get(writer)
    if bases is None or bases.epoch != writer.epoch:  # a new tenure: forget every base
        bases = _BASES[writer] = CheckpointBases(writer.settings.checkpoint_full_every)
        bases.epoch = writer.epoch
    bases._acknowledged(writer.state)
    user_data = writer.settings.user_data
    saved = await bases.encode(command, writer.blob_store, user_data, writer.execution_id)
    return saved  # type: ignore[return-value]
