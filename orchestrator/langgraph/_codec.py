"""How a LangGraph thread maps onto this product's events, and back.

One execution per ``(thread_id, checkpoint_ns)``: its pipeline id is
``langgraph:<thread_id>`` (so every namespace of a thread is found by pipeline), its
execution id ``langgraph:<thread_id>`` for the root namespace and
``langgraph:<thread_id>~<hash of ns>`` for the others. A LangGraph checkpoint is one
``CheckpointSaved`` (product id ``<execution_id>@<checkpoint id>``, name the LangGraph
checkpoint id, which sorts by time); its data is LangGraph's own serde output, kept
opaque (type tag + base64 bytes) inside our JSON user data, so it is claim-checked to
the blob store above the threshold like any checkpoint data. The metadata travels
twice: serde-typed inside the data (exact round trip) and as plain JSON in the event's
metadata (what ``alist(filter=...)`` matches in PostgreSQL).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol

PIPELINE_PREFIX = "langgraph:"


def pipeline_id(thread_id: str) -> str:
    """The pipeline id every namespace of ``thread_id`` shares."""
    return f"{PIPELINE_PREFIX}{thread_id}"


def execution_id(thread_id: str, checkpoint_ns: str) -> str:
    """The execution that holds ``(thread_id, checkpoint_ns)``; ``~`` (not ``/``) joins a
    subgraph's namespace digest, so the id is one path segment of the query API's URLs."""
    if not checkpoint_ns:
        return pipeline_id(thread_id)
    digest = hashlib.sha256(checkpoint_ns.encode()).hexdigest()[:16]
    return f"{pipeline_id(thread_id)}~{digest}"


def product_checkpoint_id(execution: str, checkpoint_id: str) -> str:
    """Our checkpoint id (unique across executions) for a LangGraph checkpoint id."""
    return f"{execution}@{checkpoint_id}"


def pack(serde: SerializerProtocol, value: Any) -> list[str]:
    """``[type, base64 bytes]`` of ``serde.dumps_typed(value)``: opaque, JSON-safe."""
    kind, data = serde.dumps_typed(value)
    return [kind, base64.b64encode(data).decode("ascii")]


def unpack(serde: SerializerProtocol, packed: list[str]) -> Any:
    """The inverse of :func:`pack`."""
    kind, data = packed
    return serde.loads_typed((kind, base64.b64decode(data)))


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return not (isinstance(value, float) and not math.isfinite(value))


def filterable(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata keys whose values are plain JSON (what filters can match)."""
    return {
        str(k): v.replace("\u0000", "") if isinstance(v, str) else v
        for k, v in metadata.items()
        if _json_safe(v)
    }


def checkpoint_data(
    serde: SerializerProtocol,
    *,
    thread_id: str,
    checkpoint_ns: str,
    checkpoint: Mapping[str, Any],
    metadata: Mapping[str, Any],
    parent_id: str | None,
) -> dict[str, Any]:
    """The ``CheckpointSaved`` data of one LangGraph checkpoint."""
    return {
        "format": "langgraph/1",
        "thread_id": thread_id,
        "checkpoint_ns": checkpoint_ns,
        "checkpoint_id": checkpoint["id"],
        "parent_checkpoint_id": parent_id,
        "checkpoint": pack(serde, dict(checkpoint)),
        "metadata": pack(serde, dict(metadata)),
    }


def writes_data(serde: SerializerProtocol, writes: list[tuple[int, str, Any]]) -> list[list[Any]]:
    """The ``CheckpointWritesSaved`` data: ``[idx, channel, [type, b64]]`` per write."""
    return [[idx, channel, pack(serde, value)] for idx, channel, value in writes]
