"""What one event changed: a structural diff of two folded states.

Pure and incremental: the replay tool calls it once per event with the state before
and after, so ``--diff`` streams without holding the history in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

_MISSING = object()


@dataclass(frozen=True, slots=True)
class Change:
    """``path`` went from ``old`` to ``new`` (``None`` standing for absent)."""

    path: str
    old: Any
    new: Any

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "old": to_jsonable(self.old), "new": to_jsonable(self.new)}


def to_jsonable(value: Any) -> Any:
    """States and their parts as plain JSON values (datetimes as ISO 8601)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.compare  # not the fold's bookkeeping (ExecutionState.applied)
        }
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _children(value: Any) -> Mapping[str, Any] | None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.compare}
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    return None


def diff(old: Any, new: Any, path: str = "") -> Iterator[Change]:
    """Yield the leaf changes from ``old`` to ``new``; lists and tuples compare whole."""
    if old is new:
        return
    old_children, new_children = _children(old), _children(new)
    if old_children is not None and new_children is not None:
        for key in dict.fromkeys([*old_children, *new_children]):
            a = old_children.get(key, _MISSING)
            b = new_children.get(key, _MISSING)
            if a is b or a == b:
                continue
            sub = f"{path}.{key}" if path else key
            if a is _MISSING or b is _MISSING:
                yield Change(sub, None if a is _MISSING else a, None if b is _MISSING else b)
            else:
                yield from diff(a, b, sub)
        return
    if old != new:
        yield Change(path or "<root>", old, new)
