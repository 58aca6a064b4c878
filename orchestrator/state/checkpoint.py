"""The seed's checkpoint API: ``save`` inside a task, ``list``, ``restore``.

Used as the seed writes it::

    from orchestrator.state import checkpoint

    await checkpoint.save(name="after_part_1", data={...}, metadata={"timestamp": datetime.now()})
    checkpoints = await checkpoint.list(pipeline_id="research_pipeline", execution_id="exec_12345")
    restored = await checkpoint.restore(checkpoint_id=checkpoints[-1].id)

``save`` appends ``CheckpointSaved`` through the running task's execution writer (the
task scope, set by the orchestrator or :func:`task_scope`): it is fenced and ordered
like every other event of the execution. Its data is JSON, compressed (``compression.algorithm``)
above a threshold and claim-checked into the blob store above 256 KiB (sha256-verified when
read back). Metadata may hold datetimes (ISO 8601 strings once saved).

``restore`` rebuilds the execution's state *at* the checkpoint through the history
service (``StateRuntime.history``): the newest snapshot before it plus the archived
events up to its ``CheckpointSaved`` event, with the checkpoint's data read back from
that event itself.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from orchestrator.commands import SaveCheckpoint
from orchestrator.events import (
    CheckpointSaved,
    ExecutionState,
    NothingToRestore,
    Position,
    Target,
    UserData,
    UserDataErased,
    UserDataError,
    from_fields,
    timed_async,
)
from orchestrator.state.errors import (
    CheckpointCorrupt,
    CheckpointNotFound,
    NotInTask,
)
from orchestrator.state.readmodel import CheckpointRow
from orchestrator.state.running_task import current_task, task_scope
from orchestrator.state.sealed import decode_chain, decode_value
from orchestrator.state.services import StateRuntime, current_runtime, runtime_or_none
from orchestrator.state.sync import Session, parse_session

__all__ = [
    "CheckpointInfo",
    "RestoredCheckpoint",
    "SavedCheckpoint",
    "list",
    "restore",
    "save",
    "task_scope",
]

Consistency = Literal["eventual", "strong", "causal"]


async def _honour(
    rt: StateRuntime, consistency: Consistency | None, session: Session | str | None
) -> None:
    """Wait for what ``consistency`` (None: the configured strategy) needs, as every read
    path does (``orchestrator.state.sync``); a causal ``session`` learns nothing here."""
    if isinstance(session, str):
        session = Session(seen={(p.topic, p.partition): p.offset for p in parse_session(session)})
    need = rt.sync.need(consistency, process_writes=rt.written(), session=session)
    await rt.wait_for(need.positions)


@dataclass(frozen=True, slots=True, kw_only=True)
class SavedCheckpoint:
    """What ``save`` wrote: the checkpoint's id and where its event landed."""

    id: str
    name: str
    execution_id: str
    task_id: str | None
    sequence: int
    position: Position


CheckpointInfo = CheckpointRow
"""A checkpoint as ``list`` returns it (without its data): the read model's row."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoredCheckpoint(CheckpointRow):
    """The execution's state at the checkpoint and the checkpoint's data."""

    state: ExecutionState
    data: Any


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _jsonable(value: Any) -> Any:
    """Datetimes (and dates, times) as ISO 8601; containers walked; the rest as is.

    A JSON-plain value (dicts with string keys, lists, scalars: what a save usually
    holds) comes back as the same object, walked but not copied."""
    cls = value.__class__
    if cls in _SCALARS:
        return value
    if cls is dict:
        changed = None
        for k, v in value.items():
            new = _jsonable(v)
            if new is not v or k.__class__ is not str:
                changed = True
                break
        if changed is None:
            return value
    if cls is builtins.list and all(_jsonable(v) is v for v in value):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, builtins.list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return value


def _progress(data: Any) -> float | None:
    value = data.get("progress") if isinstance(data, Mapping) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


async def save(
    name: str,
    data: Any = None,
    metadata: Any = None,
    *,
    progress: float | None = None,
) -> SavedCheckpoint:
    """Save a checkpoint of the running task; ``progress`` defaults to ``data["progress"]``.

    Raises ``NotInTask`` outside a task, ``InvalidTransition`` if the execution is not
    running or paused, ``LeaseLost`` if this process no longer owns the execution.
    """
    task = current_task()
    if task is None:
        raise NotInTask("checkpoint.save")
    command = SaveCheckpoint(
        name=name,
        task_id=task.task_id,
        data=_jsonable(data),
        metadata=None if metadata is None else _jsonable(metadata),
        progress=progress if progress is not None else _progress(data),
    )
    position = await task.writer.execute(command)
    runtime = runtime_or_none()  # a writer used without a runtime: nothing to record
    if runtime is not None:
        runtime.record([position])
    return SavedCheckpoint(
        id=command.checkpoint_id,
        name=name,
        execution_id=task.execution_id,
        task_id=task.task_id,
        sequence=task.writer.state.last_sequence,
        position=position,
    )


@timed_async("checkpoint")
async def list(
    pipeline_id: str | None = None,
    execution_id: str | None = None,
    *,
    consistency: Consistency | None = "strong",
    runtime: StateRuntime | None = None,
    session: Session | str | None = None,
) -> builtins.list[CheckpointInfo]:
    """Checkpoints of a pipeline and/or execution, oldest first.

    ``consistency="strong"`` (the default here) first waits until the read model has
    applied this process's own writes, so a checkpoint just saved is listed; ``causal``
    waits for ``session`` (a ``Session`` or token); ``None``: the configured strategy.
    """
    rt = runtime or current_runtime("checkpoint.list")
    await _honour(rt, consistency, session)
    rows = await rt.read_model.list_checkpoints(pipeline_id, execution_id)
    return [replace(r, metadata=await _metadata(rt, r.execution_id, r.metadata)) for r in rows]


async def _metadata(rt: StateRuntime, execution_id: str, value: Any) -> Any:
    """Listed metadata, decrypted if sealed; an erased execution's as ``{"$erased": id}``
    (a listing still shows that the checkpoint existed)."""
    try:
        return await rt.open_value(value, execution_id)
    except UserDataErased:
        return {"$erased": execution_id}


@timed_async("checkpoint")
async def restore(
    checkpoint_id: str,
    *,
    consistency: Consistency | None = "strong",
    runtime: StateRuntime | None = None,
    session: Session | str | None = None,
) -> RestoredCheckpoint:
    """The execution's state at the checkpoint and its data (blob fetched and verified).

    Raises ``CheckpointNotFound``, ``CheckpointCorrupt`` when the data cannot be read
    back intact (a missing or tampered blob), or ``UserDataErased`` when the execution's
    data was erased (``orchestrator-state executions erase``).
    """
    rt = runtime or current_runtime("checkpoint.restore")
    await _honour(rt, consistency, session)
    row = await rt.read_model.find_checkpoint(checkpoint_id)
    if row is None:
        raise CheckpointNotFound(checkpoint_id)
    try:  # the newest snapshot before the checkpoint + the events up to its own
        restored = await rt.history.state(row.execution_id, Target(checkpoint=checkpoint_id))
    except NothingToRestore as exc:
        raise CheckpointCorrupt(
            checkpoint_id, "its event is not in the execution's archive"
        ) from exc
    state = restored.state
    saved = None if restored.last_event is None else restored.last_event.payload
    if not isinstance(saved, CheckpointSaved) or saved.checkpoint_id != checkpoint_id:
        raise CheckpointCorrupt(checkpoint_id, "its event is not in the execution's archive")
    data, metadata = await asyncio.gather(
        _read_data(rt, checkpoint_id, (state.execution_id, state.last_sequence), saved),
        _read(rt, checkpoint_id, state.execution_id, saved.metadata),
    )
    return from_fields(  # name, task_id, progress: the saved event's
        RestoredCheckpoint,
        saved,
        id=checkpoint_id,
        pipeline_id=state.pipeline_id,
        execution_id=state.execution_id,
        sequence=state.last_sequence,
        created_at=row.created_at,
        state=state,
        data=data,
        metadata=metadata,
    )


async def _read_data(
    rt: StateRuntime,
    checkpoint_id: str,
    at: tuple[str, int],
    saved: CheckpointSaved,
) -> Any:
    """The checkpoint's data (``saved``, the save at ``at``: execution id, sequence);
    stored as a delta, its chain (read from the archive: it may start before the
    snapshot the state was restored from) applied from the whole copy."""
    if saved.delta_base is None:
        return await _read(rt, checkpoint_id, at[0], saved.data)
    try:
        chain = await rt.read_model.checkpoint_chain(checkpoint_id, at)
        if chain is None:
            raise CheckpointNotFound(checkpoint_id)
        return await decode_chain(chain, rt.blob_store, rt.data_keys)
    except UserDataErased:
        raise
    except UserDataError as exc:
        raise CheckpointCorrupt(checkpoint_id, str(exc)) from exc


async def _read(
    rt: StateRuntime, checkpoint_id: str, execution_id: str, value: UserData | None
) -> Any:
    if value is None:
        return None
    if value.ref is not None and rt.blob_store is None:
        raise CheckpointCorrupt(checkpoint_id, f"data is in {value.ref.uri} and no blob store")
    try:
        return await decode_value(value, execution_id, rt.blob_store, rt.data_keys)
    except UserDataErased:
        raise  # erased on request: not corrupt, gone
    except UserDataError as exc:
        raise CheckpointCorrupt(checkpoint_id, str(exc)) from exc
