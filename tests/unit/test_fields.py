"""``events.from_fields`` / ``field_values``: conversions between records sharing names."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.events import field_values, from_fields


@dataclass(frozen=True)
class _Row:
    name: str
    size: int
    note: str = ""


@dataclass(frozen=True)
class _Other:
    name: str
    size: int
    extra: bool


def test_from_fields_reads_a_dataclass_by_attribute_and_a_mapping_by_key() -> None:
    source = _Other(name="a", size=3, extra=True)
    assert from_fields(_Row, source, note="n") == _Row("a", 3, "n")
    assert from_fields(_Row, {"name": "b", "size": 4, "note": "", "x": 1}) == _Row("b", 4)


def test_given_fields_win_over_the_source() -> None:
    assert from_fields(_Row, {"name": "b", "size": 4, "note": "old"}, note="new").note == "new"


def test_field_values_skips_what_it_is_told() -> None:
    row = _Row("a", 3, "n")
    assert field_values(row) == {"name": "a", "size": 3, "note": "n"}
    assert field_values(row, skip=frozenset({"note"})) == {"name": "a", "size": 3}
