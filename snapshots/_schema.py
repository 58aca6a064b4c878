"""The Avro schemas of a snapshot: the state body and the header (``schemas/snapshot``).

Kept apart from the event schemas (``schemas/current``): a snapshot is a cache of the
fold, not part of the log, so its schema may change in ways the event schemas may not.
Every state schema that ever wrote snapshots stays readable as long as its directory is
kept under ``schemas/snapshot/releases/vN``; a fingerprint matching none of them makes
the snapshot unusable (restore then replays instead).

The state mirrors ``events.state`` field by field; user data (arbitrary JSON) travels as
JSON text, so the schema never has to describe what users put in it. Since version 3 the
task and checkpoint lists are one JSON block each (``snapshots._rows``), which a restore
parses in one call; the records of v1 and v2 (arrays of records) still read.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro.repository.base import AbstractSchemaRepository, SchemaRepositoryError
from fastavro.schema import load_schema, parse_schema, to_parsing_canonical_form
from fastavro.types import Schema

from orchestrator.events import (
    AppliedIds,
    CheckpointRef,
    ExecutionState,
    TaskState,
    plain_slot_fields,
    rabin_fingerprint,
    schemas_root,
    slot_builder,
)
from orchestrator.snapshots._rows import CHECKPOINTS, TASKS, checkpoints_of, tasks_of
from orchestrator.snapshots._rows import json_text as _json

NAMESPACE = "orchestrator.snapshot"
STATE_RECORD = "ExecutionState"
HEADER_RECORD = "SnapshotHeader"


def snapshot_schemas_root() -> Path:
    """``schemas/snapshot`` of this repository."""
    return schemas_root() / "snapshot"


class _SiblingFiles(AbstractSchemaRepository):
    """fastavro repository resolving ``orchestrator.snapshot.X`` to ``<directory>/X.avsc``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load(self, name: str) -> Any:
        _, _, short = name.rpartition(".")
        try:
            return json.loads((self.directory / f"{short}.avsc").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SchemaRepositoryError(f"cannot read {short}.avsc: {exc}") from exc


def _signed(value: int) -> int:
    """An unsigned 64-bit fingerprint as the signed Avro ``long`` the header holds."""
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass(frozen=True, slots=True)
class StateSchema:
    """One version of the ExecutionState schema, parsed, with its fingerprint."""

    directory: Path
    schema: Schema = field(repr=False, compare=False)
    fingerprint: int
    """CRC-64-AVRO of the Parsing Canonical Form, as a signed 64-bit integer."""

    @classmethod
    def load(cls, directory: Path) -> StateSchema:
        schema = load_schema(f"{NAMESPACE}.{STATE_RECORD}", repo=_SiblingFiles(directory))
        canonical = to_parsing_canonical_form(schema)
        return cls(directory, schema, _signed(rabin_fingerprint(canonical)))


@dataclass(frozen=True, slots=True)
class StateSchemas:
    """The current state schema (the reader) and every released one, by fingerprint."""

    current: StateSchema
    writers: Mapping[int, StateSchema]

    @classmethod
    def load(cls, root: Path | None = None) -> StateSchemas:
        root = snapshot_schemas_root() if root is None else root
        current = StateSchema.load(root / "current")
        writers = {current.fingerprint: current}
        for directory in sorted((root / "releases").glob("v*")):
            release = StateSchema.load(directory)
            writers.setdefault(release.fingerprint, release)
        return cls(current, writers)


@functools.cache
def default_state_schemas() -> StateSchemas:
    """The repository's snapshot state schemas, loaded once."""
    return StateSchemas.load()


@functools.cache
def header_schema() -> Schema:
    """The parsed ``SnapshotHeader`` schema of the current format version."""
    path = snapshot_schemas_root() / "current" / f"{HEADER_RECORD}.avsc"
    return parse_schema(json.loads(path.read_text(encoding="utf-8")))


# --- ExecutionState <-> Avro record ---------------------------------------------------


_DECODER = json.JSONDecoder()
_DECODE = _DECODER.decode
_SCAN: Any = getattr(_DECODER, "scan_once")  # noqa: B009 (untyped: the C scanner alone)
_CONSTANTS: dict[str, Any] = {"null": None, "true": True, "false": False}


def _unjson(text: str) -> Any:
    # Most user-data fields of a pending task are null: skip the parser for constants.
    if text in _CONSTANTS:
        return _CONSTANTS[text]
    # ``_json`` writes one value and no whitespace: the scanner reads it to the end.
    # Anything else (whitespace, trailing text, an error) goes to the full decoder,
    # which accepts or refuses it exactly as before.
    try:
        value, end = _SCAN(text, 0)
    except (StopIteration, ValueError):
        return _DECODE(text)
    return value if end == len(text) else _DECODE(text)


_TASK_JSON = ("inputs", "outputs", "metadata", "execution_details")
"""The task fields a v1 or v2 snapshot holds as JSON text."""


def state_to_record(state: ExecutionState, *, with_ids: bool = True) -> dict[str, Any]:
    """The Avro record of ``state`` (tasks as an array, in the state's task order);
    ``with_ids=False`` leaves the applied event ids out (format 2 keeps them apart)."""
    return {
        "execution_id": state.execution_id,
        "pipeline_id": state.pipeline_id,
        "status": state.status,
        "epoch": state.epoch,
        "owner": state.owner,
        "last_sequence": state.last_sequence,
        "created_at": state.created_at,
        "started_at": state.started_at,
        "updated_at": state.updated_at,
        "completed_at": state.completed_at,
        "progress": state.progress,
        "current_task": state.current_task,
        "completed_tasks": list(state.completed_tasks),
        "pending_tasks": list(state.pending_tasks),
        "context": _json(dict(state.context)),
        "checkpoints": CHECKPOINTS.encode(state.checkpoints),
        "tasks": TASKS.encode(state.tasks.values()),
        "error": state.error,
        "outputs": _json(state.outputs),
        "forked_from": state.forked_from,
        "fork_sequence": state.fork_sequence,
        "root_execution_id": state.root_execution_id,
        **(_applied_record(state) if with_ids else _no_ids(state)),
    }


def _no_ids(state: ExecutionState) -> dict[str, Any]:
    return {"applied_base": state.last_sequence, "applied_event_ids": ""}


def _applied_record(state: ExecutionState) -> dict[str, Any]:
    """The applied event ids the state knows, if they reach its last sequence."""
    base, ids = state.applied.known_ids()
    if not ids or base + len(ids) != state.last_sequence:
        return _no_ids(state)
    if any(not i or "\n" in i for i in ids):  # not joinable: leave them unknown
        return _no_ids(state)
    return {"applied_base": base, "applied_event_ids": "\n".join(ids)}


def _applied(record: Mapping[str, Any]) -> AppliedIds:
    text = record.get("applied_event_ids") or ""
    last = record["last_sequence"]
    if not text:
        return AppliedIds(None, last)
    ids = text.split("\n")
    base = record.get("applied_base", 0)
    if base + len(ids) != last:  # inconsistent: know none rather than wrong ones
        return AppliedIds(None, last)
    return AppliedIds(ids, base)


_Build = Callable[[Mapping[str, Any]], Any]


def _builder(cls: type, sources: Mapping[str, str], env: Mapping[str, Any]) -> _Build:
    """``cls`` from an Avro record ``r``, built slot by slot as ``events`` builds the read
    path's frozen dataclasses (its ``__init__`` costs twice as much): field ``name`` is the
    expression ``sources[name]`` over ``r``, else ``r["name"]``."""
    names = plain_slot_fields(cls)
    assert names is not None, f"{cls.__name__} is not a plain slots dataclass"
    exprs = [sources.get(name, f"r[{name!r}]") for name in names]
    return slot_builder(cls, "r", exprs, {"_unjson": _unjson, "_tuple": tuple, **env})


_task: _Build = _builder(
    TaskState,
    {
        "depends_on": "_tuple(r['depends_on'])",
        **{name: f"_unjson(r[{name!r}])" for name in _TASK_JSON},
    },
    {},
)
_checkpoint: _Build = _builder(CheckpointRef, {}, {})
_state: _Build = _builder(
    ExecutionState,
    {
        "completed_tasks": "_tuple(r['completed_tasks'])",
        "pending_tasks": "_tuple(r['pending_tasks'])",
        "context": "_unjson(r['context'])",
        "outputs": "_unjson(r['outputs'])",
        "checkpoints": "_checkpoints_of(r['checkpoints'], _checkpoint)",
        "tasks": "_tasks_of(r['tasks'], _task)",
        "applied": "_applied(r)",
    },
    {
        "_checkpoint": _checkpoint,
        "_task": _task,
        "_applied": _applied,
        "_checkpoints_of": checkpoints_of,
        "_tasks_of": tasks_of,
    },
)


def record_to_state(record: Mapping[str, Any]) -> ExecutionState:
    """The ``ExecutionState`` an Avro record describes, read with the schema that wrote
    it, of any release: tasks and checkpoints as v3's JSON blocks or as the arrays of
    records of v1 and v2; v1's missing applied ids as none known."""
    state: ExecutionState = _state(record)
    return state
