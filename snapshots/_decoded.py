"""Decoded snapshots kept by the bytes they came from: a restore-latency cache.

Decoding a snapshot (checksum, decompress, Avro, record -> state) is most of a latest
restore's cost, and a process that serves reads (the API, the debugger) restores the
same few executions again and again. The cache answers a lookup only when the object
is unchanged since it was decoded, told by a token: the object's bytes read again
(equal bytes: a memcmp, or an identity check for the memory store), or, for a store
that can tell an object's version without reading it (the filesystem: inode, size,
modification time), that version. A snapshot rewritten, corrupted or deleted since is
never served from here, so a cached answer is exactly what decoding would return.

Bounded by a byte budget (the objects' sizes), least recently used first out.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

_V = TypeVar("_V")

DEFAULT_BUDGET = 64 * 1024 * 1024
"""Bytes of snapshot objects held at most (their decoded states come on top)."""


class DecodedCache(Generic[_V]):
    """``uri -> (token, decoded value, object size)``, LRU within ``budget`` bytes."""

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self._held = 0
        self._entries: OrderedDict[str, tuple[object, _V, int]] = OrderedDict()

    def get(self, uri: str, token: object) -> _V | None:
        """The value decoded at ``uri`` when its object had this token, if held."""
        entry = self._entries.get(uri)
        if entry is None:
            return None
        if entry[0] is not token and entry[0] != token:
            self._drop(uri)
            return None
        self._entries.move_to_end(uri)
        return entry[1]

    def put(self, uri: str, token: object, value: _V, size: int) -> None:
        """Remember ``value`` as what the ``size``-byte object at ``uri`` decodes to
        while its token is ``token``."""
        if size > self.budget:
            return
        self._drop(uri)
        self._entries[uri] = (token, value, size)
        self._held += size
        while self._held > self.budget:
            _, (_, _, old) = self._entries.popitem(last=False)
            self._held -= old

    def forget(self, uri: str) -> None:
        """Drop ``uri`` (its object did not decode or went away)."""
        self._drop(uri)

    def _drop(self, uri: str) -> None:
        entry = self._entries.pop(uri, None)
        if entry is not None:
            self._held -= entry[2]
