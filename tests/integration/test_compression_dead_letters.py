"""Compression bombs in every algorithm, produced onto the topic against the real stack.

A payload that declares more than ``limits.max_user_data_bytes`` is not an event (the
codec refuses it unopened); one that declares little and inflates to more is refused by
the fold when it reaches the declared size. Each is dead-lettered with its reason, and
the genuine history, written under different algorithms, still applies in full.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import _projector_support as support
import asyncpg
import cramjam
import pytest
from test_dead_letters import raw_encode

from orchestrator.events import COMPRESSION_ALGORITHMS
from orchestrator.events import catalogue as c
from orchestrator.events.compression import TAG
from orchestrator.events.envelope import Envelope
from orchestrator.events.limits import InputLimits
from orchestrator.events.userdata import UserData, encode_user_data
from orchestrator.projections.processor import Projector

LIMIT = 1024 * 1024


def _bomb(algorithm: str, declared: int, mib: int) -> UserData:
    frame = bytes(getattr(cramjam, algorithm).compress(bytes(1024 * 1024)))
    head = TAG + bytes([1, COMPRESSION_ALGORITHMS.index(algorithm) + 1])  # type: ignore[arg-type]
    return UserData("json_zstd", inline=head + declared.to_bytes(4, "big") + bytes(4) + frame * mib)


@pytest.mark.timeout(180)
async def test_bombs_in_every_algorithm_are_dead_lettered_with_their_reason(
    kafka: Any, make_projection: support.MakeProjection
) -> None:
    hist = support.histories(1, seed=29, tasks=3)
    [(victim, genuine)] = hist.items()
    prefix, suffix = genuine[:4], genuine[4:]
    last = prefix[-1].sequence
    assert last is not None and suffix

    def forged(data: UserData) -> Envelope:
        payload = c.ExecutionCompleted(outputs=data)
        return replace(prefix[-1], event_id=str(uuid.uuid4()), sequence=last + 1, payload=payload)

    # The genuine events carry user data compressed under every algorithm in turn.
    recompressed = [
        replace(
            e,
            payload=replace(
                e.payload,
                outputs=encode_user_data(
                    {"n": i, "text": "state " * 400},
                    compress_threshold=64,
                    algorithm=COMPRESSION_ALGORITHMS[i % 4],
                ),
            ),
        )
        if isinstance(e.payload, c.TaskCompleted)
        else e
        for i, e in enumerate(suffix)
    ]
    limits = InputLimits(max_user_data_bytes=LIMIT)
    topics, settings, dsn = await make_projection(1, name="bombs", limits=limits)
    pipeline = topics.pipeline.name
    at: dict[str, int] = {}
    decodable: list[Envelope] = []  # the fold rejects these; the archive keeps them
    async with support.event_log(
        kafka.bootstrap_servers, topics, kafka.supports_idempotence
    ) as log:
        await log.append_batch(prefix)
        for algorithm in COMPRESSION_ALGORITHMS:
            for kind, bomb in (
                ("claims", _bomb(algorithm, 2**32 - 1, 1)),  # says 4 GiB
                ("lies", _bomb(algorithm, LIMIT // 2, 8)),  # says 512 KiB, holds 8 MiB
            ):
                event = forged(bomb)
                sent = await log.append_raw(pipeline, raw_encode(event), key=victim.encode())
                decodable += [event] if kind == "lies" else []
                at[f"{algorithm} {kind}"] = sent.offset
        await log.append_batch(recompressed)
        ends = sum((await log.end_offsets(pipeline)).values())
        async with support.running_worker(Projector(settings, dsn, kafka.bootstrap_servers)):
            await support.wait_applied(
                dsn, settings.name, ends, 90, "the processor to move past every bomb"
            )

    conn = await asyncpg.connect(dsn)
    try:
        letters = await conn.fetch('SELECT "offset", reason FROM dead_letters')
    finally:
        await conn.close()
    reasons = {r["offset"]: r["reason"] for r in letters}
    for name, offset in at.items():
        assert offset in reasons, f"{name} not dead-lettered"
        expected = "max_user_data_bytes" if name.endswith("claims") else "more than the declared"
        assert expected in reasons[offset], (name, reasons[offset])
    expected = {victim: [*prefix, *decodable, *recompressed]}
    assert await support.compare_with_fold(dsn, expected, settings) == []
