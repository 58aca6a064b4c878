"""Opening user data for a reader: blob markers fetched, sealed values decrypted.

The fold keeps user data opaque (``events.crypto``): a claim-checked value is a
``{"$blob": ...}`` marker and, with encryption on, an inline value is a
``{"$sealed": ...}`` marker. Readers that hand values to users (``StateManager``,
``checkpoint.restore``, resume) open them here with the execution's (or namespace's)
data key. A value whose key was erased raises :class:`UserDataErased`: erased data is
gone, and saying so is clearer than returning ``None``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from orchestrator.events import (
    BLOB_MARKER,
    SEALED_MARKER,
    BlobRef,
    BlobStore,
    CheckpointSaved,
    DataKeySource,
    ExecutionState,
    KeyLookup,
    UserData,
    UserDataErased,
    UserDataError,
    decode_user_data,
    fetch_verified,
    is_sealed,
    marker_scope,
    parse_json,
    resolve_blob_markers,
    sealed_scope,
    user_data_bytes,
)


def is_marker(value: Any) -> bool:
    """Whether ``value`` is a blob or sealed marker (something a reader must open)."""
    return (
        isinstance(value, dict)
        and len(value) == 1
        and (BLOB_MARKER in value or SEALED_MARKER in value)
    )


async def _keys(data_keys: DataKeySource | None, scope: str) -> KeyLookup | None:
    return None if data_keys is None else await data_keys.lookup([scope])


async def open_value(
    value: Any, scope: str, blob_store: BlobStore | None, data_keys: DataKeySource | None
) -> Any:
    """``value`` as the fold holds it, with a top-level marker opened.

    ``scope`` is whose data the caller reads; the key used is the one the sealed bytes
    name (a fork carries its source's values, sealed under the source's key)."""
    return await open_any(value, blob_store, data_keys)


async def open_mapping(
    values: Mapping[str, Any],
    scope: str,
    blob_store: BlobStore | None,
    data_keys: DataKeySource | None,
) -> dict[str, Any]:
    """Every value of ``values`` opened (an execution's context, for instance)."""
    return {k: await open_value(v, scope, blob_store, data_keys) for k, v in values.items()}


async def decode_value(
    value: UserData, scope: str, blob_store: BlobStore | None, data_keys: DataKeySource | None
) -> Any:
    """The JSON value of encoded user data, opened with the data key its bytes name."""
    return await decode_any(value, blob_store, data_keys)


async def _fetched(
    value: UserData, blob_store: BlobStore | None, data_keys: DataKeySource | None
) -> tuple[UserData, KeyLookup | None]:
    """``value`` inline (a blob fetched and verified) and the keys its sealed bytes need."""
    if value.ref is not None:
        if blob_store is None:
            raise UserDataError(f"user data is in {value.ref.uri} and no blob store is configured")
        body = await asyncio.to_thread(fetch_verified, value.ref, blob_store)
        value = UserData(encoding=value.encoding, inline=body)
    keys = None
    if value.inline is not None and is_sealed(value.inline):
        keys = await _keys(data_keys, sealed_scope(value.inline))
        if keys is None:
            raise UserDataError("user data is encrypted and no data keys are configured")
    return value, keys


async def decode_any(
    value: UserData, blob_store: BlobStore | None, data_keys: DataKeySource | None
) -> Any:
    """Like :func:`decode_value` where the scope is not known up front: the sealed bytes
    name it (LangGraph reads rows of many threads at once)."""
    fetched = value.ref is not None
    value, keys = await _fetched(value, blob_store, data_keys)
    if fetched:
        return await asyncio.to_thread(decode_user_data, value, keys=keys)
    return decode_user_data(value, keys=keys)


async def decode_chain(
    chain: Sequence[CheckpointSaved],
    blob_store: BlobStore | None,
    data_keys: DataKeySource | None,
    max_bytes: int | None = None,
) -> Any:
    """A checkpoint's data from its chain (``events.checkpointdata``: the whole copy
    first, then each delta): blobs fetched and verified, sealed links opened."""
    if not chain or chain[-1].data is None:
        return None
    if len(chain) == 1:
        return await decode_any(chain[-1].data, blob_store, data_keys)
    raw: bytes | None = None
    for link in chain:
        if link.data is None:
            raise UserDataError(f"checkpoint {link.checkpoint_id} in a delta chain has no data")
        value, keys = await _fetched(link.data, blob_store, data_keys)
        raw = user_data_bytes(value, None, base=raw, max_bytes=max_bytes, keys=keys)
    assert raw is not None
    return parse_json(raw)


async def open_any(
    value: Any, blob_store: BlobStore | None, data_keys: DataKeySource | None
) -> Any:
    """Like :func:`open_value` where the scope is not known up front."""
    if not is_marker(value):
        return value
    if SEALED_MARKER in value:
        scope = marker_scope(value)
        assert scope is not None
        keys = await _keys(data_keys, scope)
        return resolve_blob_markers(value, blob_store, keys=keys)
    if blob_store is None:
        return value
    marker = value[BLOB_MARKER]
    ref = BlobRef(uri=marker["uri"], sha256=marker["sha256"], size=marker["size"])
    return await decode_any(UserData(encoding=marker["encoding"], ref=ref), blob_store, data_keys)


async def open_state(state: ExecutionState, data_keys: DataKeySource | None) -> ExecutionState:
    """The execution's state with its sealed values decrypted: context, outputs, each
    task's inputs and outputs. Claim-checked values stay ``$blob`` markers, as they are
    without encryption; an erased execution's values read ``{"$erased": id}`` (its
    status and history still read)."""
    if data_keys is None:
        return state
    erased = {"$erased": state.execution_id}

    async def one(value: Any) -> Any:
        if not (is_marker(value) and SEALED_MARKER in value):
            return value
        try:
            return await open_any(value, None, data_keys)
        except UserDataErased:
            return erased

    tasks = {
        tid: replace(task, inputs=await one(task.inputs), outputs=await one(task.outputs))
        for tid, task in state.tasks.items()
    }
    context = {k: await one(v) for k, v in state.context.items()}
    return replace(state, tasks=tasks, context=context, outputs=await one(state.outputs))
