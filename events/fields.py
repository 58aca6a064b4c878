"""Build a dataclass from another record that shares its field names.

A snapshot header and its index row, a database row and the record it describes, a
restored checkpoint and its reference: the same fields under the same names, copied
one by one. ``from_fields`` copies them by name, so each conversion names only what
differs (a renamed field, a computed one) and a field added to both needs no edit.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


_NAMES: dict[type, tuple[str, ...]] = {}


def _init_names(cls: type) -> tuple[str, ...]:
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls) if f.init)
    return names


def from_fields(cls: type[T], source: Any, /, **given: Any) -> T:
    """A ``cls`` (a dataclass): the fields in ``given`` from there, every other init
    field read from ``source`` by its name: an attribute of a dataclass instance, else
    a key (of a mapping, an Avro record, a database row such as asyncpg's ``Record``)."""
    names = [n for n in _init_names(cls) if n not in given]
    if dataclasses.is_dataclass(source):
        values = {n: getattr(source, n) for n in names}
    else:
        values = {n: source[n] for n in names}
    return cls(**values, **given)


def field_values(record: object, /, *, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The init fields of the dataclass instance ``record`` by name, but those in ``skip``
    (what a mapping-shaped record, an Avro record or a JSON document, takes)."""
    return {n: getattr(record, n) for n in _init_names(type(record)) if n not in skip}
