"""A state's task list and checkpoint list as one JSON block each (state schema v3).

Why: a cold restore decodes a snapshot every time, and with the lists as Avro arrays of
records most of it went to fastavro building a dict per task and per checkpoint, then
to record_to_state parsing each task's four JSON-text fields and building the objects
(profile of the bench's 200-task state: Avro ~55%, record_to_state ~37%). As one JSON
document the whole list parses in one C call, user data included, and each row becomes
its object through a compiled builder (``events.slot_builder``).

A block is ``{"columns": [...], "rows": [[...], ...]}``: one array per task (or
checkpoint), its values in the dataclass's field order (the order of ``TaskState.avsc``
and ``CheckpointRef.avsc``, which a test keeps equal to the dataclasses), timestamps as
ISO 8601 text in UTC to the microsecond (the instant Avro's ``timestamp-micros`` held;
``datetime.fromisoformat`` reads it six times faster than the epoch-plus-timedelta
fastavro computes), user data as the JSON values themselves. The columns travel with
the rows, so a block written with other fields is refused (the snapshot is then skipped
for an older one or a replay), never read into the wrong fields.

Values come back exactly as through the Avro records before: user data goes through
the same JSON encoder and decoder options as one value of its own did, numbers are
coerced as Avro's ``long`` and ``double`` coerce them, timestamps as fastavro converts
them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from fastavro.write import LOGICAL_WRITERS

from orchestrator.events import CheckpointRef, TaskState, plain_slot_fields, slot_builder

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROS: Callable[[Any, Any], int] = LOGICAL_WRITERS["long-timestamp-micros"]
"""fastavro's own datetime -> microseconds (naive datetimes included), so a row holds
the instant the Avro field held."""

_TIMES = frozenset({"started_at", "completed_at", "timestamp"})
_LONGS = frozenset({"attempts", "sequence"})
_DOUBLES = frozenset({"retry_delay_seconds", "progress"})
_TUPLES = frozenset({"depends_on"})
_MAPPINGS = frozenset({"execution_details"})


def json_text(value: Any) -> str:
    """``value`` as the JSON text a snapshot holds user data in (one value, no spaces)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


def _iso(value: datetime) -> str:
    """The instant Avro's ``timestamp-micros`` would hold, as the aware UTC datetime
    fastavro reads back, in ISO 8601."""
    return (_EPOCH + timedelta(0, 0, _MICROS(value, None))).isoformat()


def _writer(name: str) -> str:
    """The expression turning field ``name`` of object ``o`` into its row value."""
    if name in _TIMES:
        return f"None if o.{name} is None else _iso(o.{name})"
    if name in _LONGS:
        return f"int(o.{name})"
    if name in _DOUBLES:
        return f"None if o.{name} is None else float(o.{name})"
    if name in _TUPLES:
        return f"list(o.{name})"
    if name in _MAPPINGS:
        return f"dict(o.{name})"
    return f"o.{name}"


def _reader(name: str, i: int) -> str:
    """The expression turning value ``i`` of row ``r`` into field ``name``."""
    if name in _TIMES:
        return f"None if r[{i}] is None else _from_iso(r[{i}])"
    if name in _TUPLES:
        return f"tuple(r[{i}])"
    return f"r[{i}]"


class RowCodec:
    """One dataclass's list <-> its JSON block, through compiled row functions."""

    def __init__(self, cls: type) -> None:
        names = plain_slot_fields(cls)
        assert names is not None, f"{cls.__name__} is not a plain slots dataclass"
        self.name = cls.__name__
        self.columns = names
        env: dict[str, Any] = {"_iso": _iso}
        source = f"def row(o):\n    return [{', '.join(_writer(n) for n in names)}]"
        exec(source, env)  # source built from field names only
        self._row: Callable[[Any], list[Any]] = env["row"]
        readers = [_reader(n, i) for i, n in enumerate(names)]
        self._build: Callable[[list[Any]], Any] = slot_builder(
            cls, "r", readers, {"_from_iso": datetime.fromisoformat}
        )

    def encode(self, items: Iterable[Any]) -> str:
        """The JSON block of ``items``."""
        return json_text({"columns": self.columns, "rows": [self._row(o) for o in items]})

    def decode(self, text: str) -> list[Any]:
        """The objects of a block; ``ValueError`` if it is not one this version wrote."""
        block = json.loads(text)
        if not isinstance(block, dict) or block.get("columns") != self.columns:
            raise ValueError(f"{self.name} rows with columns other than {self.columns}")
        rows = block["rows"]
        width = len(self.columns)
        if not isinstance(rows, list) or {type(r) for r in rows} - {list}:
            raise ValueError(f"{self.name} rows are not lists")
        if {len(r) for r in rows} - {width}:
            raise ValueError(f"{self.name} rows are not of {width} values")
        build = self._build
        return [build(r) for r in rows]


TASKS = RowCodec(TaskState)
CHECKPOINTS = RowCodec(CheckpointRef)


def tasks_of(
    value: str | list[Mapping[str, Any]], task: Callable[..., TaskState]
) -> dict[str, TaskState]:
    """The task mapping of a record's ``tasks``: a v3 block, or (v1, v2) Avro records
    built by ``task``."""
    if isinstance(value, str):
        return {t.task_id: t for t in TASKS.decode(value)}
    return {r["task_id"]: task(r) for r in value}


def checkpoints_of(
    value: str | list[Mapping[str, Any]], checkpoint: Callable[..., CheckpointRef]
) -> tuple[CheckpointRef, ...]:
    """The checkpoint list of a record's ``checkpoints``: a v3 block, or (v1, v2) Avro
    records built by ``checkpoint``."""
    if isinstance(value, str):
        return tuple(CHECKPOINTS.decode(value))
    return tuple([checkpoint(r) for r in value])
