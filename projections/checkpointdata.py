"""Checkpoint data read from the event archive: the one copy PostgreSQL keeps.

The ``checkpoints`` read model lists checkpoints without their data, and the archive's
``payload`` column names it (``{"$raw": ...}``) rather than holding it: the bytes are
in the archived record (``execution_events.raw``) alone, and a checkpoint stored as a
delta (``events.checkpointdata``) needs the records of its chain anyway. These
queries fetch those records; decoding user data (blobs, data keys) is the caller's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import asyncpg

from orchestrator.events import (
    BrokenChain,
    CheckpointSaved,
    DecodeError,
    EventCodec,
    UserData,
    UserDataError,
    chain_of,
    decode_user_data,
    default_codec,
    is_sealed,
    parse_json,
    plain_chain_bytes,
)
from orchestrator.projections._payload import json_value

if TYPE_CHECKING:  # settings -> executions -> _batch -> here: annotations only
    from orchestrator.projections.settings import ReadModelTables

RAW_MARKER = "$raw"


def archived_data_json(data: UserData | None) -> Any:
    """What the archive's ``payload`` holds for checkpoint data: a ``$blob`` marker for a
    claim-checked value (blob retention looks for it), else ``{"$raw": {encoding, size}}``
    (the bytes are in the row's raw record)."""
    if data is None:
        return None
    if data.ref is not None:
        return decode_user_data(data)
    return {RAW_MARKER: {"encoding": data.encoding, "size": len(data.inline or b"")}}


def archived_payload_json(payload: Any) -> Any:
    """The payload as the archive's ``payload`` column holds it: JSON, user data decoded,
    except a checkpoint's data (see :func:`archived_data_json`), never inflated here."""
    if not isinstance(payload, CheckpointSaved):
        return json_value(payload)
    out = json_value(replace(payload, data=None))
    out["data"] = archived_data_json(payload.data)
    return out


async def checkpoint_chains(
    conn: asyncpg.Connection | asyncpg.Pool,
    tables: ReadModelTables,
    codec: EventCodec,
    execution_id: str,
    wanted: Mapping[str, int],
) -> dict[str, list[CheckpointSaved] | BrokenChain]:
    """The chain of each checkpoint in ``wanted`` (id -> sequence) of one execution, the
    whole copy first (or why it is broken: a base missing from the archive)."""
    if not wanted:
        return {}
    query = (
        f"SELECT raw FROM {tables.execution_events} WHERE execution_id = $1"
        " AND event_type = 'CheckpointSaved' AND outcome = 'applied'"
        " AND sequence >= $2 AND sequence <= $3 ORDER BY sequence"
    )
    low, high = min(wanted.values()), max(wanted.values())
    saved = await _saved(conn, codec, query, execution_id, low, high)
    need = min(
        (p.delta_from for p in saved if p.delta_from is not None and p.checkpoint_id in wanted),
        default=low,
    )
    if need < low:
        saved = await _saved(conn, codec, query, execution_id, need, low - 1) + saved
    out: dict[str, list[CheckpointSaved] | BrokenChain] = {}
    for cid in wanted:
        try:
            out[cid] = chain_of(saved, cid)
        except BrokenChain as exc:
            out[cid] = exc
    return out


async def checkpoint_values(
    conn: asyncpg.Connection | asyncpg.Pool,
    tables: ReadModelTables,
    execution_id: str,
    wanted: Mapping[str, int],
) -> dict[str, Any]:
    """Each checkpoint's data as :func:`plain_value` shows it (the API's listing)."""
    chains = await checkpoint_chains(conn, tables, default_codec(), execution_id, wanted)
    return {
        cid: {"$undecodable": str(chain)} if isinstance(chain, BrokenChain) else plain_value(chain)
        for cid, chain in chains.items()
    }


async def _saved(
    conn: asyncpg.Connection | asyncpg.Pool,
    codec: EventCodec,
    query: str,
    *args: Any,
) -> list[CheckpointSaved]:
    out = []
    for row in await conn.fetch(query, *args):
        try:
            payload = codec.decode(bytes(row["raw"])).payload
        except DecodeError:  # not a chain's link: a checkpoint that needs it says so
            continue
        if isinstance(payload, CheckpointSaved):
            out.append(payload)
    return out


def plain_value(chain: list[CheckpointSaved]) -> Any:
    """The checkpoint's data as JSON without blob store or keys: a whole value as the
    read models always showed it (decoded, or a ``$blob`` / ``$sealed`` marker); a delta
    applied where every link is inline and not sealed, else a ``$delta`` marker."""
    last = chain[-1]
    if last.data is None:
        return None
    if len(chain) == 1:
        try:
            return decode_user_data(last.data)
        except UserDataError as exc:
            return {"$undecodable": str(exc)}
    links = [p.data for p in chain]
    if any(d is None or d.inline is None or is_sealed(d.inline) for d in links):
        return {"$delta": {"checkpoint_id": last.checkpoint_id, "base": last.delta_base}}
    try:
        return parse_json(plain_chain_bytes([d for d in links if d is not None]))
    except (UserDataError, BrokenChain) as exc:
        return {"$undecodable": str(exc)}
