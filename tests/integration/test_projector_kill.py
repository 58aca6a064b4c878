"""Kill the processor at random instants: nothing is lost and nothing is applied twice.

The processor runs as a real subprocess (``orchestrator-state project``) over 50,000+
events of 500+ executions and is SIGKILLed at 20 random points of its progress (right
after a batch commits, or somewhere inside the next one), then restarted. Because rows
and offsets commit in one PostgreSQL transaction, the read model must end exactly equal
to the pure fold of the log, and the archive must hold each event once.
"""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path
from typing import Any

import _projector_support as support
import pytest

from tests.faults._verifier import verify

pytestmark = pytest.mark.slow

EVENTS = 50_000
KILLS = 20


async def _start(dsn: str, kafka: Any, settings: Any, stderr: Path) -> asyncio.subprocess.Process:
    return await support.start_cli(
        stderr,
        "project",
        "--database-url",
        dsn,
        "--bootstrap-servers",
        kafka.bootstrap_servers,
        "--projection",
        settings.name,
        "--pipeline-topic",
        settings.pipeline_topic,
        "--shared-topic",
        settings.shared_topic,
        "--batch-size",
        "1000",
        "--session-timeout-ms",
        "6000",
    )


@pytest.mark.timeout(600)
async def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    kafka: Any, make_projection: support.MakeProjection, tmp_path: Path
) -> None:
    stderr = tmp_path / "processor.log"
    rng = random.Random(20240115)
    hist = support.histories(1400, seed=7, tasks=10)
    events = support.mixed(hist, seed=8)
    assert len(events) >= EVENTS and len(hist) >= 500
    topics, settings, dsn = await make_projection(6, name="kill_test", prepared=False)
    await support.append_all(kafka, topics, events)
    total = len(events)
    # Kill once progress passes each threshold: always mid-stream, never at the end.
    thresholds = sorted(rng.uniform(0.05, 0.9) * total for _ in range(KILLS))
    kills = 0
    for threshold in thresholds:
        proc = await _start(dsn, kafka, settings, stderr)

        async def past(
            threshold: float = threshold, proc: asyncio.subprocess.Process = proc
        ) -> bool:
            if proc.returncode is not None:
                log_tail = stderr.read_text(errors="replace")[-3000:]
                raise AssertionError(f"processor exited {proc.returncode}:\n{log_tail}")
            return await support.applied_total(dsn, settings.name) >= threshold

        await support.wait_until(past, 120, f"progress past {int(threshold)}", interval=0.02)
        # Right after a batch committed, or somewhere inside the next batch.
        await asyncio.sleep(rng.choice([0.0, rng.uniform(0, 0.3)]))
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        kills += 1
    assert kills >= KILLS

    proc = await _start(dsn, kafka, settings, stderr)

    async def done() -> bool:
        assert proc.returncode is None, stderr.read_text(errors="replace")[-3000:]
        return await support.applied_total(dsn, settings.name) == total

    await support.wait_until(done, 150, "the processor to catch up")
    proc.send_signal(signal.SIGTERM)  # a clean stop: finish the batch, leave the group
    assert await asyncio.wait_for(proc.wait(), 30) == 0

    mismatches = await support.compare_with_fold(dsn, support.by_execution(events), settings)
    assert mismatches == []
    # And the independent verifier (fastavro + schemas/ only): every event once in the
    # log, the read model and the archive equal its own fold.
    verdict = await verify(
        kafka.bootstrap_servers,
        settings.pipeline_topic,
        dsn,
        [e.event_id for e in events],
        pipeline_states=settings.tables.pipeline_states,
    )
    print(f"verifier: {verdict.records} records, {verdict.executions} executions")
    verdict.check()
