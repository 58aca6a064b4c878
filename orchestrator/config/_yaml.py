"""YAML with positions: every mapping key and value remembers its line and column.

PyYAML's composer already records marks on nodes; we keep them beside the plain
data so a validation error can point at ``file:line:column``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Location = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Mark:
    """Where a key or value stands in its file (1-based)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class PositionedDocument:
    """The parsed data, and the mark of each path in it."""

    data: Any
    marks: dict[Location, Mark]
    file: str

    def mark_of(self, path: Location) -> Mark:
        """The mark of ``path`` or of its nearest ancestor that has one."""
        for cut in range(len(path), -1, -1):
            mark = self.marks.get(path[:cut])
            if mark is not None:
                return mark
        return Mark(self.file, 1, 1)


def _walk(node: yaml.Node, path: Location, file: str, marks: dict[Location, Mark]) -> Any:
    marks[path] = Mark(file, node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            child = (*path, key)
            out[key] = _walk(value_node, child, file, marks)
            marks[child] = Mark(file, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*path, i), file, marks) for i, item in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


def load_positioned(text: str, file: str = "<string>") -> PositionedDocument:
    """Parse one YAML document, keeping marks; a syntax error names its position."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    marks: dict[Location, Mark] = {}
    data = {} if node is None else _walk(node, (), file, marks)
    return PositionedDocument(data=data, marks=marks, file=file)


def load_positioned_file(path: Path) -> PositionedDocument:
    """``load_positioned`` for a file on disk."""
    return load_positioned(path.read_text(), str(path))
