"""``check`` and ``bottlenecks`` against the real stack.

The read model is written by the real processor from events appended to the real
topic; the check compares it with the fold of the archive (and of the log) and must
say "consistent" on a clean database and name every corruption it is shown.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from _history_support import append, cli, history, unique_ids
from _state_stack import Stack, state_stack

from orchestrator.debug import StateDebugger
from orchestrator.events.simulate import simulate_execution
from orchestrator.state import use_runtime


@dataclass
class World:
    stack: Stack
    checked: list[str]
    other: str

    def args(self) -> list[str]:
        s = self.stack
        return [
            "--database-url",
            s.dsn,
            "--projection",
            s.projection.name,
            "--pipeline-topic",
            s.topics.pipeline.name,
            "--bootstrap-servers",
            s.kafka.bootstrap_servers,
        ]


@pytest.fixture(scope="module")
async def world(kafka: Any, postgres: str) -> AsyncIterator[World]:
    async with state_stack(kafka, postgres) as stack:
        run = uuid.uuid4().hex[:6]
        rng = random.Random(11)
        checked = [f"exec_chk_{run}_{i}" for i in range(4)]
        other = f"exec_other_{run}"
        events = [*history(checked[0], 300, seed=1, pipeline_id="p_check")]
        for eid in checked[1:]:
            events += simulate_execution(eid, rng, pipeline_id="p_check", tasks=5, takeovers=True)
        events += history(other, 120, seed=2, pipeline_id="p_other")
        await append(stack, unique_ids(events))
        yield World(stack, checked, other)


async def test_check_is_clean_on_a_clean_database(world: World) -> None:
    with use_runtime(world.stack.runtime):
        report = await StateDebugger().check_consistency(pipeline_id="p_check")
    assert report.consistent, report
    assert report.executions_checked == len(world.checked)
    everything = await StateDebugger(world.stack.runtime).check_consistency(source="log")
    assert everything.consistent, everything
    assert everything.executions_checked == len(world.checked) + 1
    result = await cli("check", *world.args())
    assert result.exit_code == 0, result.output
    assert "consistent" in result.stdout and "INCONSISTENT" not in result.stdout


async def test_check_names_a_corrupted_row_and_exits_non_zero(world: World) -> None:
    pool = world.stack.pool
    victim = world.checked[0]
    status = await pool.fetchval(
        "SELECT status FROM pipeline_states WHERE execution_id = $1", victim
    )
    assert status != "cancelled"
    await pool.execute(
        "UPDATE pipeline_states SET status = 'cancelled' WHERE execution_id = $1", victim
    )
    await pool.execute(
        "UPDATE task_states SET attempts = attempts + 7 WHERE execution_id = $1"
        " AND task_id = 'task_0'",
        victim,
    )
    try:
        result = await cli("check", "--pipeline", "p_check", "--json", *world.args())
        assert result.exit_code == 1, result.output
        report = json.loads(result.stdout)
        assert report["consistent"] is False
        found = {
            (m["execution_id"], m["table"], m["task_id"], m["field"]) for m in report["mismatches"]
        }
        assert found == {
            (victim, "pipeline_states", None, "status"),
            (victim, "task_states", "task_0", "attempts"),
        }
        [mismatch] = [m for m in report["mismatches"] if m["field"] == "status"]
        assert (mismatch["read_model"], mismatch["fold"]) == ("cancelled", status)
        for source in ("archive", "log"):
            text = await cli("check", "--source", source, *world.args())
            assert text.exit_code == 1, text.output
            assert "INCONSISTENT" in text.stdout and victim in text.stdout
        other = await cli("check", "--pipeline", "p_other", *world.args())
        assert other.exit_code == 0, other.output
    finally:
        await pool.execute(
            "UPDATE pipeline_states SET status = $2 WHERE execution_id = $1", victim, status
        )
        await pool.execute(
            "UPDATE task_states SET attempts = attempts - 7 WHERE execution_id = $1"
            " AND task_id = 'task_0'",
            victim,
        )
    assert (await cli("check", *world.args())).exit_code == 0


async def test_check_reports_missing_executions_sequence_gaps_and_dead_letters(
    world: World,
) -> None:
    stack, pool = world.stack, world.stack.pool
    gone, ghost = world.checked[1], f"exec_ghost_{uuid.uuid4().hex[:6]}"
    await pool.execute("DELETE FROM task_states WHERE execution_id = $1", gone)
    await pool.execute("DELETE FROM pipeline_states WHERE execution_id = $1", gone)
    await pool.execute(
        "INSERT INTO pipeline_states (execution_id, pipeline_id, status, epoch, last_sequence)"
        " VALUES ($1, 'p_check', 'running', 1, 3)",
        ghost,
    )
    # An execution whose log lacks sequence 4: the fold refuses 5 and 6.
    gappy = f"exec_gap_{uuid.uuid4().hex[:6]}"
    events = unique_ids(history(gappy, 6, seed=5, pipeline_id="p_check"))
    await append(stack, [*events[:3], *events[4:]])
    report = await StateDebugger(stack.runtime).check_consistency(pipeline_id="p_check")
    assert not report.consistent
    assert report.missing_in_read_model == (gone,)
    assert report.missing_in_history == (ghost,)
    [gap] = report.sequence_gaps
    assert (gap.execution_id, gap.expected, gap.got, gap.refused) == (gappy, 4, 5, 2)
    assert {(d.execution_id, d.offset) for d in report.dead_letters} == {
        (gappy, gap.position.offset),
        (gappy, gap.position.offset + 1),
    }
    assert report.mismatches == ()
    result = await cli("check", *world.args())
    assert result.exit_code == 1
    for text in (gone, ghost, gappy, "sequence gaps", "dead letters"):
        assert text in result.stdout


async def test_bottlenecks_rank_tasks_and_show_consumer_lag(world: World) -> None:
    stack = world.stack
    report = await StateDebugger(stack.runtime).analyze_bottlenecks(pipeline_id="p_check")
    assert report.executions >= len(world.checked)
    assert report.slowest_tasks and report.slowest_tasks[0].p95 >= report.slowest_tasks[-1].p95
    retried = {r.task_id for r in report.most_retried}
    assert retried, "the long history retries its tasks"
    partitions = {
        f"{stack.topics.pipeline.name}:{p}" for p in range(stack.topics.pipeline.partitions)
    }
    assert partitions <= set(report.consumer_lag)
    assert all(lag == 0 for lag in report.consumer_lag.values()), report.consumer_lag
    result = await cli("bottlenecks", "--json", *world.args())
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["slowest_tasks"] and set(body["consumer_lag"]) >= partitions
