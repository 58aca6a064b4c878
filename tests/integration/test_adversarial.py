"""Adversarial records produced straight onto the topic, against the real stack.

Forged and replayed records with taken sequences, a forged ownership event, corrupt
user data, a decompression bomb, garbage bytes, an unknown schema fingerprint, an
oversized undecodable record, a valid record over the record limit, and identifiers
PostgreSQL cannot store: each gets its dead-letter reason (or its verdict in the
archive), the processor and the snapshotter keep running and move past it, the genuine
history still applies, and the read model and restore equal the fold of the genuine
log. A forged ownership event cannot wedge an execution: the next takeover goes above.
"""

from __future__ import annotations

import json
import os
import resource
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import _projector_support as support
import asyncpg
import cramjam
import pytest
from _state_stack import Stack, state_stack
from test_dead_letters import raw_encode

from orchestrator.commands import CreateExecution, ScheduleTask, StartValidation, SucceedValidation
from orchestrator.events import catalogue as c
from orchestrator.events.codec import codec_for, default_codec
from orchestrator.events.envelope import Envelope
from orchestrator.events.fold import fold, step
from orchestrator.events.limits import InputLimits
from orchestrator.events.userdata import UserData
from orchestrator.projections import PostgresEventArchive
from orchestrator.projections.processor import Projector
from orchestrator.snapshots import FilesystemSnapshotStore, SnapshotCodec, snapshot_history
from orchestrator.snapshots.policy import SnapshotPolicy
from orchestrator.snapshots.postgres import PostgresSnapshotIndex
from orchestrator.snapshots.snapshotter import Snapshotter, SnapshotterSettings


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.timeout(180)
async def test_hostile_records_are_dead_lettered_and_the_genuine_log_applies(
    kafka: Any, make_projection: support.MakeProjection, tmp_path: Path
) -> None:
    bootstrap = kafka.bootstrap_servers
    codec = default_codec()
    hist = support.histories(3, seed=83, tasks=4)
    victim, other, third = hist
    genuine = hist[victim]
    prefix, suffix = genuine[:6], genuine[6:]
    before = fold(prefix)
    assert before is not None and suffix
    epoch, last = before.epoch, before.last_sequence
    fresh = lambda: str(uuid.uuid4())  # noqa: E731

    def forged(sequence: int, payload: Any) -> Envelope:
        return replace(
            genuine[1], event_id=fresh(), sequence=sequence, epoch=epoch, payload=payload
        )

    forged_taken = forged(last - 1, c.ExecutionPaused(reason="x"))
    forged_next = forged(last + 1, c.TaskScheduled(task_id="nope"))
    corrupt = forged(
        last + 1, c.ExecutionCompleted(outputs=UserData(encoding="json_zstd", inline=b"\x28garb"))
    )
    bomb_body = bytes(cramjam.zstd.compress(b"[" + b"0," * (20 * 1024 * 1024) + b"0]"))
    bomb = forged(
        last + 1, c.ExecutionCompleted(outputs=UserData(encoding="json_zstd", inline=bomb_body))
    )
    replayed = prefix[2]
    last_epoch = max(e.epoch for e in hist[third])
    forged_owner = Envelope(
        execution_id=third,
        pipeline_id=None,
        sequence=None,
        epoch=last_epoch + 1000,
        payload=c.ExecutionOwnershipTaken(epoch=last_epoch + 1000, node_id="mallory"),
    )
    nul_id = replace(genuine[0], execution_id="exec\x00nul", event_id=fresh())
    long_id = replace(genuine[0], execution_id="x" * 10_000, event_id=fresh())
    unknown = b"\xc3\x01" + bytes(8) + codec.encode(genuine[0])[10:]
    oversized = b"\x00" * (700 * 1024)

    # A valid event over the record limit (configured low here so the broker takes it).
    limits = InputLimits(max_record_bytes=256 * 1024)
    big_value = json.dumps({"blob": os.urandom(150 * 1024).hex()}).encode()
    big = replace(
        genuine[0],
        execution_id="exec_big",
        event_id=fresh(),
        payload=c.ExecutionCreated(
            pipeline_id="p",
            context=c.ExecutionContext(input_data=UserData(encoding="json", inline=big_value)),
        ),
    )
    topics, settings, dsn = await make_projection(1, name="adversarial", limits=limits)
    pipeline = topics.pipeline.name
    key = victim.encode()
    async with support.event_log(bootstrap, topics, kafka.supports_idempotence) as log:
        at: dict[str, int] = {}

        async def raw(name: str, value: bytes, k: bytes = key) -> None:
            at[name] = (await log.append_raw(pipeline, value, key=k)).offset

        await log.append_batch(prefix)
        await raw("forged_taken", codec.encode(forged_taken))
        await raw("replayed", codec.encode(replayed))
        await raw("forged_next", codec.encode(forged_next))
        await raw("corrupt", codec.encode(corrupt))
        await raw("bomb", raw_encode(bomb))
        await raw("garbage", b"\xff\x00" + b"garbage" * 10)
        await raw("unknown", unknown)
        await raw("oversized", oversized)
        await raw("nul_id", raw_encode(nul_id), b"exec")
        await raw("long_id", raw_encode(long_id), b"x")
        await raw("big_valid", codec.encode(big), b"exec_big")
        await log.append_batch(suffix)
        await log.append_batch(hist[other])
        await log.append_batch(hist[third])
        await raw("forged_owner", codec.encode(forged_owner), third.encode())
        ends = sum((await log.end_offsets(pipeline)).values())

        rss_before = _rss_mb()
        store, snap_codec = FilesystemSnapshotStore(tmp_path), SnapshotCodec()
        snapshotter = Snapshotter(
            SnapshotterSettings(topic=pipeline, batch_size=5),
            dsn=dsn,
            bootstrap=bootstrap,
            store=store,
            codec=snap_codec,
            event_codec=codec_for(limits),
            policy=SnapshotPolicy(frequency=3, interval=None),
        )
        async with (
            support.running_worker(Projector(settings, dsn, bootstrap)),
            support.running_worker(snapshotter),
        ):

            async def caught_up() -> bool:
                return (
                    await support.applied_total(dsn, settings.name) == ends
                    and snapshotter.records >= ends
                )

            await support.wait_until(
                caught_up, 90, "the processor and snapshotter to move past all"
            )
            poison = snapshotter.poison_records
        print(f"\nprocessor + snapshotter process max RSS: {rss_before:.0f} -> {_rss_mb():.0f} MB")

    conn = await asyncpg.connect(dsn)
    try:
        letters = await conn.fetch('SELECT * FROM dead_letters ORDER BY "offset"')
        third_row = await conn.fetchrow(
            "SELECT epoch, owner FROM pipeline_states WHERE execution_id = $1", third
        )
        victims = await conn.fetchval(
            "SELECT count(*) FROM pipeline_states WHERE execution_id LIKE 'exec%nul'"
            " OR length(execution_id) > 256 OR execution_id = 'exec_big'"
        )
        duplicate = await conn.fetchval(
            'SELECT outcome FROM execution_events WHERE "offset" = $1', at["replayed"]
        )
    finally:
        await conn.close()
    reasons = {r["offset"]: (r["error_class"], r["reason"]) for r in letters}
    print("dead letters:", *(f"{o}: {cls}: {why[:100]}" for o, (cls, why) in reasons.items()))
    expect = {
        "forged_taken": "already taken by event",
        "forged_next": "nope",
        "corrupt": "UserDataError",
        "bomb": "max_user_data_bytes",
        "garbage": "not Avro single-object encoding",
        "unknown": "unknown schema fingerprint",
        "oversized": "by reference",
        "nul_id": "control character",
        "long_id": "over the limit",
        "big_valid": "over limits.max_record_bytes",
    }
    for name, fragment in expect.items():
        assert at[name] in reasons, f"{name} not dead-lettered"
        assert fragment in reasons[at[name]][1], (name, reasons[at[name]])
    assert duplicate == "duplicate"  # a replay is not poison
    assert victims == 0
    by_offset = {r["offset"]: r for r in letters}
    assert by_offset[at["oversized"]]["raw"] == b""  # kept by reference, not copied

    # The genuine history applied in full; the read model equals the fold of the log.
    decodable = [forged_taken, replayed, forged_next, corrupt]
    victim_log = [*prefix, *decodable, *suffix]
    assert fold(victim_log) == fold(genuine)
    expected = {victim: victim_log, other: hist[other], third: [*hist[third], forged_owner]}
    assert await support.compare_with_fold(dsn, expected, settings) == []
    assert poison == 7  # the undecodable ones; the snapshotter skipped them and went on
    # Restore (newest snapshot + archive) reaches the same state as the genuine fold.
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        restorer = snapshot_history(
            store=store,
            index=PostgresSnapshotIndex(pool),
            archive=PostgresEventArchive(pool, codec),
            codec=snap_codec,
        )
        for eid, events in ((victim, genuine), (other, hist[other])):
            assert (await restorer.latest(eid)).state == fold(events), eid
        # One verdict per record: restore (the newest snapshot before it + the archive)
        # and the snapshotter (each of its snapshots + what followed) judge every record
        # as the processor did, a forged record older than a snapshot included.
        archive = PostgresEventArchive(pool, codec)
        labels = {
            (r["partition"], r["offset"]): r["outcome"]
            for r in await pool.fetch(
                'SELECT partition, "offset", outcome FROM execution_events WHERE execution_id = $1',
                victim,
            )
        }
        archived = [e for e in await archive.events(victim) if e.log_order in labels]
        assert labels[(0, at["forged_taken"])] == "rejected"
        for event in archived[1:]:
            before = await restorer.before_position(victim, *event.log_order)
            verdict = step(before.state, event.envelope).outcome.value
            assert verdict == labels[event.log_order], (event.log_order, before.snapshot_key)
        snapshots = await PostgresSnapshotIndex(pool).candidates(victim)
        assert len(snapshots) >= 2
        for row in snapshots:
            state = snap_codec.decode(await store.get(row.object_key), row.object_key).state
            for event in archived:
                if event.log_order > row.log_order:
                    result = step(state, event.envelope)
                    assert result.outcome.value == labels[event.log_order], row.object_key
                    state = result.state
    finally:
        await pool.close()
    final = fold(genuine)
    assert final is not None and final.status in ("completed", "failed", "cancelled")
    # The forged ownership applied (nothing tells it from a real one without SASL),
    # but it cannot wedge the execution: a takeover goes above it (test_writer).
    assert third_row is not None and third_row["epoch"] == last_epoch + 1000


@pytest.fixture
async def stack(kafka: Any, postgres: str) -> Any:
    async with state_stack(kafka, postgres) as s:
        yield s


@pytest.mark.timeout(120)
async def test_a_forged_ownership_event_cannot_wedge_an_execution(stack: Stack) -> None:
    """Written without a lease at a huge epoch, it applies (nothing tells it from a real
    one without authenticated producers), but the next legitimate takeover goes above
    it and the execution continues."""
    execution_id = f"exec_{uuid.uuid4().hex[:10]}"
    writer = await stack.runtime.create_execution(
        CreateExecution(execution_id=execution_id, pipeline_id="p", tasks=("init",))
    )
    await writer.execute_many([StartValidation(), SucceedValidation()])
    forged = Envelope(
        execution_id=execution_id,
        pipeline_id=None,
        sequence=None,
        epoch=1_000_000,
        payload=c.ExecutionOwnershipTaken(epoch=1_000_000, node_id="mallory"),
    )
    at = await stack.log.append(forged)
    await stack.runtime.read_model.wait_for(at, 30)
    seized = await stack.runtime.read_model.load_execution(execution_id)
    assert seized is not None and (seized.epoch, seized.owner) == (1_000_000, "mallory")
    # The lease holder's next write is fenced off by the forged epoch; it resyncs.
    await stack.runtime.release_execution(execution_id)

    other = stack.new_runtime("node-b")
    b = await other.open_execution(execution_id)
    assert b.epoch > 1_000_000 and b.state.owner == "node-b"
    done = await b.execute(ScheduleTask(task_id="init"))
    await stack.runtime.read_model.wait_for(done, 30)
    state = await stack.runtime.read_model.load_execution(execution_id)
    assert state is not None and state.tasks["init"].status == "scheduled"
    assert (state.epoch, state.last_sequence) == (b.epoch, 4)
    await other.close()
