"""Decoded snapshots kept by the bytes they came from: a restore-latency cache.

Decoding a snapshot (checksum, decompress, Avro, record -> state) is most of a latest
restore's cost, and a process that serves reads (the API, the debugger) restores the
same few executions again and again. The cache answers a lookup only when the object's
bytes, read again from the store, are equal to the bytes it decoded: a snapshot that
was rewritten, corrupted or deleted since is never served from here, so a cached
answer is exactly what decoding would return. Comparing bytes costs a memcmp (or an
identity check for the memory store), far below a decode.

Bounded by a byte budget (the bytes held dominate), least recently used first out.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

_V = TypeVar("_V")

DEFAULT_BUDGET = 64 * 1024 * 1024
"""Bytes of snapshot objects held at most (their decoded states come on top)."""


class DecodedCache(Generic[_V]):
    """``uri -> (object bytes, decoded value)``, LRU within ``budget`` bytes."""

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self._held = 0
        self._entries: OrderedDict[str, tuple[bytes, _V]] = OrderedDict()

    def get(self, uri: str, data: bytes) -> _V | None:
        """The value decoded from exactly ``data`` at ``uri``, if held."""
        entry = self._entries.get(uri)
        if entry is None:
            return None
        if entry[0] is not data and entry[0] != data:
            self._drop(uri)
            return None
        self._entries.move_to_end(uri)
        return entry[1]

    def put(self, uri: str, data: bytes, value: _V) -> None:
        """Remember ``value`` as what ``data`` at ``uri`` decodes to."""
        if len(data) > self.budget:
            return
        self._drop(uri)
        self._entries[uri] = (data, value)
        self._held += len(data)
        while self._held > self.budget:
            _, (old, _) = self._entries.popitem(last=False)
            self._held -= len(old)

    def forget(self, uri: str) -> None:
        """Drop ``uri`` (its object did not decode or went away)."""
        self._drop(uri)

    def _drop(self, uri: str) -> None:
        entry = self._entries.pop(uri, None)
        if entry is not None:
            self._held -= len(entry[0])
