"""A read model as one declaration: its tables, its fold, its migrations.

Why: the processor's apply step, ``rebuild``, ``migrate`` and the query API's generic
parts all need to know what a read model writes and where. Declared once here, they
work from the declaration instead of each knowing the table list by heart, and a new
read model is one module (a :class:`Projection` value) plus its :func:`register` call.

The processor calls a read model's :class:`ReadModelFold` once per batch, in three
steps (the interface stays this small on purpose)::

    keys  = fold.keys(batch)                 # states the batch touches, and where from
    found = await fold.load(conn, names, missing_keys)   # those not cached
    done  = fold.fold(batch, states, refused)            # pure: verdicts, states, rows

and writes ``done.rows()`` by the tables' declared ``write`` mode, the next offsets and
``done.notifications()`` in one fenced transaction (``projections.store``).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import asyncpg

from orchestrator.events import DecodedRecord

TP = tuple[str, int]
Row = tuple[Any, ...]
WriteMode = Literal["upsert", "insert", "append"]
Refused = Mapping[tuple[str, int, int], str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Table:
    """One table of a read model, and how a batch writes it.

    ``write``: ``upsert`` (``ON CONFLICT DO UPDATE``) and ``insert`` (``ON CONFLICT DO
    NOTHING``) send a table's rows as one array per column, or as ONE array of
    ``row_type`` when given (a composite type its migrations create, same columns:
    asyncpg then checks each row once instead of each value); ``append`` is a binary
    COPY (the archive: the fence makes every position new). ``archive``: the topic
    role (``pipeline`` or ``shared``) whose raw records the table keeps, with the
    column holding the record key (``archive_key``); a rebuild reads them where Kafka
    no longer can.
    """

    key: str
    default: str
    columns: tuple[tuple[str, str], ...]
    primary_key: tuple[str, ...]
    write: WriteMode
    row_type: str | None = None
    archive: Literal["pipeline", "shared"] | None = None
    archive_key: str | None = None
    update: tuple[str, ...] | None = None
    """``upsert`` only: the columns a row written over a stored one replaces (default:
    every column but the key's)."""
    update_when: str | None = None
    """``upsert`` only: the SQL condition, on the stored row ``t`` and the new one
    ``EXCLUDED``, under which a conflicting row is written over (else it is ignored)."""

    def __post_init__(self) -> None:
        names = {c for c, _ in self.columns}
        if not set(self.primary_key) <= names:
            raise ValueError(f"table {self.key}: primary key not among its columns")
        if not set(self.update or ()) <= names:
            raise ValueError(f"table {self.key}: updated columns not among its columns")


class Folded(Protocol):
    """What a read model's fold made of one batch."""

    next_offsets: dict[TP, int]
    dead_letters: list[Any]

    def states(self) -> Mapping[Hashable, Any]:
        """The new state of every key the batch changed (cached, and the base of the
        batch staged on top of this one)."""
        ...

    def rows(self) -> Mapping[str, Sequence[Row]]:
        """The rows to write, by table key, in each table's column order."""
        ...

    def notifications(self) -> Mapping[str, Iterable[str]]:
        """``NOTIFY`` channel -> values a commit announces (sent only if it commits)."""
        ...


class ReadModelFold(Protocol):
    """The three calls the processor makes per batch (see the module docstring)."""

    def keys(self, batch: Sequence[DecodedRecord]) -> dict[Hashable, TP | None]:
        """The state keys ``batch`` touches; with the partition they were read from when
        the state may be cached per partition (``None``: never cached)."""
        ...

    async def load(
        self, conn: asyncpg.Connection, names: Mapping[str, str], keys: Sequence[Hashable]
    ) -> dict[Hashable, Any]:
        """The stored states of ``keys`` (absent: no row yet), from tables ``names``."""
        ...

    def fold(
        self,
        batch: Sequence[DecodedRecord],
        states: Mapping[Hashable, Any | None],
        refused: Refused | None,
    ) -> Folded:
        """Fold ``batch`` on ``states`` (every key of :meth:`keys`); pure, total:
        ``refused`` records (by position) are dead-lettered, not applied."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Projection:
    """A read model: ``kind`` names it in the registry and in configuration."""

    kind: str
    tables: tuple[Table, ...]
    fold: ReadModelFold
    migrations: str | tuple[tuple[str, str], ...] | None = None
    """A package (``importlib.resources``) of ``NNNN_name.sql`` files, or the files
    themselves as ``(name, sql)`` pairs; versions are unique across every registered
    read model (they share one ``schema_migrations`` table)."""
    entity: tuple[str, str] | None = None
    """``(table key, key column)`` of the rows a rebuild must not lose: the swap is
    refused if the live table holds a key the rebuilt one lacks."""
    _by_key: dict[str, Table] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for table in self.tables:
            if table.key in self._by_key:
                raise ValueError(f"read model {self.kind}: table {table.key} declared twice")
            self._by_key[table.key] = table

    def table(self, key: str) -> Table:
        """The declared table ``key``."""
        return self._by_key[key]

    def names(self, overrides: Mapping[str, str] = {}, suffix: str = "") -> dict[str, str]:
        """Where each table lives: its configured name (``overrides``) or its default,
        with ``suffix`` (a rebuild's) appended to the defaults."""
        return {t.key: overrides.get(t.key) or (t.default + suffix) for t in self.tables}


_REGISTRY: dict[str, Projection] = {}


def register(projection: Projection) -> Projection:
    """Make ``projection`` known to ``migrate``, the processor and ``rebuild`` by kind
    (registering the same value again is harmless)."""
    known = _REGISTRY.get(projection.kind)
    if known is not None and known is not projection:
        raise ValueError(f"a read model of kind {projection.kind!r} is already registered")
    _REGISTRY[projection.kind] = projection
    return projection


def unregister(kind: str) -> None:
    """Forget the read model ``kind`` (a test's own model, once the test is over)."""
    _REGISTRY.pop(kind, None)


def registered() -> tuple[Projection, ...]:
    """Every registered read model, in registration order."""
    return tuple(_REGISTRY.values())


def projection_of(kind: str) -> Projection:
    """The registered read model ``kind``; ``KeyError`` naming the known ones."""
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise KeyError(f"no read model {kind!r} (known: {', '.join(_REGISTRY)})") from None
