"""Poison records go to the DLQ topic and ``dead_letters``; everything else flows.

Garbage bytes, an unknown schema fingerprint, an event the fold refuses and a write
to an immutable shared variable each land in their topic's ``.dlq`` (bytes unchanged,
headers naming why and where) and in ``dead_letters``; every other event is applied.
``dlq replay`` re-submits a letter's bytes to its original topic.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import replace
from typing import Any

import _projector_support as support
import asyncpg
import pytest

from orchestrator.events import catalogue as c
from orchestrator.events.codec import default_codec
from orchestrator.events.consumer import EventConsumer, TopicPartition
from orchestrator.events.envelope import Envelope
from orchestrator.events.fold import fold
from orchestrator.events.topics import dlq_name
from orchestrator.events.userdata import encode_user_data
from orchestrator.projections.deadletters import replay_dead_letter
from orchestrator.projections.errors import DeadLetterRefused
from orchestrator.projections.processor import Projector
from tests.histories import task_started


def _shared(name: str, value: object, version: int, immutable: bool = False) -> Envelope:
    return Envelope(
        execution_id=None,
        pipeline_id=None,
        sequence=None,
        epoch=0,
        payload=c.SharedVariableSet(
            namespace="research_pipeline",
            name=name,
            type="float",
            value=encode_user_data(value),
            immutable=immutable,
            version=version,
        ),
    )


async def _dlq_records(bootstrap: str, topic: str, count: int) -> list[Any]:
    tp = TopicPartition(dlq_name(topic), 0)
    out: list[Any] = []
    async with EventConsumer(bootstrap) as consumer:
        consumer.assign([tp])
        consumer.seek(tp, 0)
        for _ in range(100):
            out.extend(await consumer.getmany(tp, timeout_ms=100))
            if len(out) >= count:
                break
    return out


@pytest.mark.timeout(120)
async def test_poison_records_are_dead_lettered_and_the_rest_is_applied(
    kafka: Any, make_projection: support.MakeProjection
) -> None:
    bootstrap = kafka.bootstrap_servers
    codec = default_codec()
    hist = support.histories(4, seed=41)
    victim, *others = hist
    clean = [e for e in hist[victim] if e.sequence is not None]
    assert len(clean) > 5
    # The fold refuses a task nobody declared; it takes no sequence: the genuine
    # event with that sequence still applies.
    rejected = replace(
        clean[3], payload=c.TaskScheduled(task_id="no_such_task"), event_id=str(uuid.uuid4())
    )
    victim_log = [*clean[:3], rejected, *clean[3:]]
    unknown = b"\xc3\x01" + bytes(8) + codec.encode(clean[0])[10:]

    topics, settings, dsn = await make_projection(1, name="poison")
    pipeline = topics.pipeline.name
    async with support.event_log(bootstrap, topics, kafka.supports_idempotence) as log:
        await log.append_batch(victim_log[:2])
        garbage_at = await log.append_raw(pipeline, b"\x00garbage", key=victim.encode())
        await log.append_batch(victim_log[2:3])
        unknown_at = await log.append_raw(pipeline, unknown, key=victim.encode())
        rejected_at = await log.append(rejected)
        await log.append_batch(victim_log[4:])
        for eid in others:
            await log.append_batch(hist[eid])
        await log.append_batch(
            [
                _shared("quality_threshold", 0.8, 1, immutable=True),
                _shared("quality_threshold", 0.9, 2),
            ]
        )
        ends = sum((await log.end_offsets(pipeline)).values()) + sum(
            (await log.end_offsets(topics.shared.name)).values()
        )

        async with support.running_worker(Projector(settings, dsn, bootstrap)):
            await support.wait_applied(
                dsn, settings.name, ends, 60, "the processor to pass every record"
            )

            conn = await asyncpg.connect(dsn)
            try:
                letters = await conn.fetch('SELECT * FROM dead_letters ORDER BY topic, "offset"')
                by_offset = {(r["topic"], r["offset"]): r for r in letters}
                assert set(by_offset) == {
                    (pipeline, garbage_at.offset),
                    (pipeline, unknown_at.offset),
                    (pipeline, rejected_at.offset),
                    (topics.shared.name, 1),
                }
                garbage = by_offset[(pipeline, garbage_at.offset)]
                assert garbage["error_class"] == "DecodeError"
                assert garbage["raw"] == b"\x00garbage"
                assert (
                    "unknown schema fingerprint"
                    in by_offset[(pipeline, unknown_at.offset)]["reason"]
                )
                refused = by_offset[(pipeline, rejected_at.offset)]
                assert refused["error_class"] == "FoldRejected"
                assert "no_such_task" in refused["reason"]
                assert refused["execution_id"] == victim
                assert refused["event_type"] == "TaskScheduled"
                immutable = by_offset[(topics.shared.name, 1)]
                assert "immutable" in immutable["reason"]
                assert {r["dlq_topic"] for r in letters} == {
                    dlq_name(pipeline),
                    dlq_name(topics.shared.name),
                }
                variable = await conn.fetchrow(
                    "SELECT value, version FROM shared_variables WHERE name = $1",
                    "quality_threshold",
                )
                assert variable is not None and variable["version"] == 1
            finally:
                await conn.close()

            dlq = await _dlq_records(bootstrap, pipeline, 3)
            assert [r.value for r in dlq] == [b"\x00garbage", unknown, codec.encode(rejected)]
            headers = dict(dlq[2].headers)
            assert headers["dlq.reason"].decode() == refused["reason"]
            assert headers["dlq.original.topic"].decode() == pipeline
            assert int(headers["dlq.original.offset"]) == rejected_at.offset
            assert headers["dlq.error.class"] == b"FoldRejected"

            # Everything else flowed: the victim as the fold sees its log, the others whole.
            expected = {victim: victim_log, **{eid: hist[eid] for eid in others}}
            assert await support.compare_with_fold(dsn, expected, settings) == []
            assert fold(victim_log) is not None

            # Replay: bytes that do not decode are refused with the reason; an event the
            # fold refused goes back to the original topic and is read again.
            conn = await asyncpg.connect(dsn)
            try:
                with pytest.raises(DeadLetterRefused, match="single-object header"):
                    await replay_dead_letter(conn, log, garbage["id"])
                again = await replay_dead_letter(conn, log, refused["id"])
                assert again.topic == pipeline and again.offset > rejected_at.offset

                await support.wait_applied(
                    dsn, settings.name, ends + 1, 30, "the replayed record to be read"
                )
                assert await conn.fetchval(
                    "SELECT replayed_at IS NOT NULL FROM dead_letters WHERE id = $1",
                    refused["id"],
                )
                assert not await conn.fetchval(
                    "SELECT replayed_at IS NOT NULL FROM dead_letters WHERE id = $1",
                    garbage["id"],
                )
                # Still not applied (its sequence is the genuine event's, and its epoch
                # may be stale by now): archived with its verdict, the old letter kept.
                outcome = await conn.fetchval(
                    'SELECT outcome FROM execution_events WHERE "offset" = $1', again.offset
                )
                assert outcome in ("rejected", "stale_epoch")
            finally:
                await conn.close()

    proc = await asyncio.create_subprocess_exec(
        *support.CLI,
        "dlq",
        "list",
        "--database-url",
        dsn,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "250"},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    listed = out.decode()
    assert "FoldRejected" in listed and "no_such_task" in listed
    assert "unknown schema fingerprint" in listed


def raw_encode(envelope: Envelope) -> bytes:
    """The envelope's bytes without the codec's checks, as a hostile producer writes them."""
    codec = default_codec()
    out = bytearray(codec.writer.header)
    codec._encode_body(envelope, out)
    return bytes(out)


def _crafted(execution_id: str) -> list[Envelope]:
    """A short execution; a forged TaskFailed (sequence 6) carries a NUL in its error text."""
    payloads: list[Any] = [
        *task_started("p", "t1"),
        c.TaskFailed(task_id="t1", attempt=1, error="bad\x00byte", retryable=False),
        c.TaskCompleted(task_id="t1"),
        c.ExecutionCompleted(),
    ]
    return [
        Envelope(execution_id=execution_id, pipeline_id="p", sequence=i, epoch=1, payload=p)
        for i, p in enumerate(payloads, start=1)
    ]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("batch_size", [5000, 1], ids=["one-batch", "one-record-batches"])
async def test_a_value_postgresql_cannot_store_is_dead_lettered_not_wedging(
    kafka: Any, make_projection: support.MakeProjection, batch_size: int
) -> None:
    """With one record a batch, the record after the refused value was already folded
    (ahead, on the value as if stored) when the refusal came: it must be folded again."""
    bootstrap = kafka.bootstrap_servers
    hist = support.histories(3, seed=61)
    crafted = _crafted("exec_nul")
    topics, settings, dsn = await make_projection(
        1, name=f"unstorable_{batch_size}", batch_size=batch_size
    )
    async with support.event_log(bootstrap, topics, kafka.supports_idempotence) as log:
        for events in hist.values():
            await log.append_batch(events)
        genuine = [e for e in crafted if e.sequence != 6]
        genuine = [*genuine[:5], *(replace(e, sequence=e.sequence - 1) for e in genuine[5:])]  # type: ignore[operator]
        await log.append_batch(genuine[:5])
        await log.append_raw(topics.pipeline.name, raw_encode(crafted[5]), key=b"exec_nul")
        await log.append_batch(genuine[5:])
        total = sum(len(h) for h in hist.values()) + len(crafted)
        async with support.running_worker(Projector(settings, dsn, bootstrap)):
            await support.wait_applied(
                dsn, settings.name, total, 60, "the processor to pass every record"
            )
    assert await support.compare_with_fold(dsn, hist, settings, exhaustive=False) == []
    conn = await asyncpg.connect(dsn)
    try:
        letters = await conn.fetch("SELECT * FROM dead_letters")
        row = await conn.fetchrow(
            "SELECT status, last_sequence FROM pipeline_states WHERE execution_id = $1",
            "exec_nul",
        )
        archived = await conn.fetchval(
            "SELECT payload FROM execution_events WHERE execution_id = $1 AND sequence = 6",
            "exec_nul",
        )
    finally:
        await conn.close()
    # A NUL in any text is refused when the record is decoded, in every reader.
    assert [r["error_class"] for r in letters] == ["DecodeError"]
    assert "NUL" in letters[0]["reason"]
    # It took no sequence: the genuine events after it applied.
    assert row is not None and (row["status"], row["last_sequence"]) == ("completed", 7)
    assert archived is None or "$unstorable" not in archived
