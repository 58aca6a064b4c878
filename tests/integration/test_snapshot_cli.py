"""``orchestrator-state snapshots prune / list / restore`` as a user runs them."""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid
from dataclasses import replace
from pathlib import Path

import asyncpg
from _databases import MakeDatabase
from _projector_support import CLI

from orchestrator.events.codec import default_codec
from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.fold import fold, step
from orchestrator.events.simulate import simulate_execution
from orchestrator.projections import readmodel as rm
from orchestrator.snapshots.filesystem import FilesystemSnapshotStore
from orchestrator.snapshots.postgres import PostgresSnapshotIndex
from orchestrator.snapshots.writer import PendingSnapshot, SnapshotWriter

TOPIC = "orchestrator.pipeline.events"
COLUMNS = [name for name, _ in rm.EVENT_COLUMNS]  # the archive's, as the projection writes it
# The columns that hold an envelope field of the same name.
ENVELOPE_COLUMNS = "execution_id pipeline_id sequence epoch event_id event_type occurred_at".split()


async def _cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def _seed(dsn: str, store_dir: Path) -> list[Envelope]:
    """One execution archived as the projection would, snapshotted every 5 events."""
    rng = random.Random(3)
    events = [
        replace(e, event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)))
        for e in simulate_execution("exec_cli", rng, tasks=8, takeovers=False)
    ]
    codec = default_codec()
    conn = await asyncpg.connect(dsn)
    try:
        state = None
        rows = []
        writer = SnapshotWriter(FilesystemSnapshotStore(store_dir))
        records = []
        for offset, e in enumerate(events):
            result = step(state, e)
            state = result.state
            row = {
                **{name: getattr(e, name) for name in ENVELOPE_COLUMNS},
                "topic": TOPIC,
                "partition": 0,
                "offset": offset,
                "outcome": result.outcome.value,
                "reason": None,
                "payload": "{}",
                "raw": codec.encode(e),
            }
            rows.append(tuple(row[name] for name in COLUMNS))
            if (offset + 1) % 5 == 0 and state is not None:
                records.append(
                    await writer.write(
                        PendingSnapshot(state, Position(TOPIC, 0, offset), e.occurred_at)
                    )
                )
        await conn.copy_records_to_table("execution_events", records=rows, columns=COLUMNS)
        await PostgresSnapshotIndex(conn).add(records)
    finally:
        await conn.close()
    return events


async def test_prune_prints_first_and_deletes_only_with_yes(
    make_database: MakeDatabase, tmp_path: Path
) -> None:
    dsn = await make_database()
    events = await _seed(dsn, tmp_path)
    store = FilesystemSnapshotStore(tmp_path)
    before = await store.list()
    assert len(before) >= 4
    common = ("--database-url", dsn, "--store", f"file://{tmp_path}")

    code, out, err = await _cli("snapshots", "prune", "--max-checkpoints", "2", *common)
    assert code == 0, err
    assert f"{len(before) - 2} snapshot(s) to delete" in out and "--yes" in out
    assert "blobs: no blob deleted" in out  # Kafka not asked: its retention is unknown
    assert await store.list() == before  # nothing deleted without --yes

    code, out, err = await _cli("snapshots", "prune", "--max-checkpoints", "2", "--yes", *common)
    assert code == 0, err
    assert f"deleted {len(before) - 2} snapshot(s)" in out
    assert await store.list() == before[-2:]

    code, out, err = await _cli("snapshots", "list", "exec_cli", "--database-url", dsn)
    assert code == 0 and out.count(".snap") == 2, out

    code, out, err = await _cli("snapshots", "restore", "exec_cli", *common)
    assert code == 0, err
    restored = json.loads(out)
    full = fold(events)
    assert full is not None
    assert restored["last_sequence"] == full.last_sequence
    assert restored["status"] == full.status
    assert before[-1] in err  # says which snapshot it started from

    code, out, err = await _cli("snapshots", "restore", "exec_cli", "--seq", "3", *common)
    assert code == 0, err
    assert json.loads(out)["last_sequence"] == 3 and "the first event" in err
