"""YAML with positions: every mapping key and value remembers its line and column.

PyYAML's composer already records marks on nodes; we keep them beside the plain
data so a validation error can point at ``file:line:column``.

Anchors and aliases are allowed, but the document they expand to is bounded
(``MAX_NODES`` values, ``MAX_DEPTH`` levels, ``MAX_BYTES`` of text): a "billion
laughs" file or a recursive anchor is refused at once, never expanded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Location = tuple[str | int, ...]

MAX_BYTES = 1024 * 1024
MAX_NODES = 20_000
MAX_DEPTH = 64


class YamlTooLarge(yaml.YAMLError):
    """A document that is, or expands (through aliases) to, more than the limits allow."""

    def __init__(self, reason: str, mark: yaml.Mark | None = None) -> None:
        self.problem_mark = mark
        super().__init__(reason)


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


class _Walker:
    """Turns a node graph into plain data, counting every value it expands to."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.marks: dict[Location, Mark] = {}
        self.nodes = 0
        self._constructor = yaml.constructor.SafeConstructor()

    def _mark(self, node: yaml.Node) -> Mark:
        return Mark(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def _count(self, node: yaml.Node, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise YamlTooLarge(
                f"the document expands to more than {MAX_NODES} values "
                "(anchors and aliases that multiply, or a recursive alias)",
                node.start_mark,
            )
        if depth > MAX_DEPTH:
            raise YamlTooLarge(
                f"the document nests deeper than {MAX_DEPTH} levels (a recursive alias?)",
                node.start_mark,
            )

    def walk(self, node: yaml.Node, path: Location, depth: int = 0) -> Any:
        self._count(node, depth)
        self.marks[path] = self._mark(node)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                self._count(key_node, depth + 1)
                key = self._constructor.construct_object(key_node, deep=True)
                child = (*path, key)
                out[key] = self.walk(value_node, child, depth + 1)
                self.marks[child] = self._mark(key_node)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.walk(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self._constructor.construct_object(node, deep=True)


def load_positioned(text: str, file: str = "<string>") -> PositionedDocument:
    """Parse one YAML document, keeping marks; a syntax error names its position."""
    if len(text) > MAX_BYTES:
        raise YamlTooLarge(f"the document is larger than {MAX_BYTES} bytes")
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    walker = _Walker(file)
    data = {} if node is None else walker.walk(node, ())
    return PositionedDocument(data=data, marks=walker.marks, file=file)


def load_positioned_file(path: Path) -> PositionedDocument:
    """``load_positioned`` for a file on disk."""
    return load_positioned(path.read_text(), str(path))
