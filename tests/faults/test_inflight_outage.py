"""The broker dies while a task's body runs ahead of the append that started it
(``runtime/_inflight.py``): the run fails with the log's error instead of hanging or
completing on an unacknowledged start, and a resume after the outage completes the
execution with every task's completion applied once (independent verifier)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _stack import fault_stack
from _verifier import verify_eventually

from orchestrator.devstack import ApacheKafkaServer, PostgresServer
from orchestrator.events.errors import LogError
from orchestrator.runtime import (
    CheckpointPolicy,
    Orchestrator,
    Pipeline,
    Policies,
    RetryPolicy,
    TaskContext,
)

DEADLINE_MS = 3000


async def test_broker_dying_while_a_started_task_runs_fails_the_run_and_resume_completes_it(
    own_kafka: ApacheKafkaServer, own_postgres: PostgresServer
) -> None:
    bootstrap = own_kafka.bootstrap_servers
    async with fault_stack(bootstrap, own_postgres.dsn, delivery_timeout_ms=DEADLINE_MS) as stack:
        pipeline = Pipeline("outage_in_window")
        runs = {"a": 0, "b": 0}
        seen: dict[str, Any] = {}

        @pipeline.task()
        async def a(context: TaskContext) -> str:
            runs["a"] += 1
            seen["execution_id"] = context.execution_id
            if runs["a"] == 1:  # its completion (and b's start) go to a dead broker
                await own_kafka.kill()
            return "a"

        @pipeline.task(depends_on=["a"])
        async def b(a: str) -> str:
            runs["b"] += 1  # runs while the append that started it is not acknowledged
            return a + "b"

        policies = Policies(
            retry=RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.2),
            checkpoints=CheckpointPolicy.of(enabled=False),
        )
        orchestrator = Orchestrator(stack.runtime, policies=policies)

        # Not a timing test: the bound only turns a hang into a failure.
        with pytest.raises(LogError, match="not acknowledged by Kafka"):
            async with asyncio.timeout(20 * DEADLINE_MS / 1000):
                await orchestrator.run_pipeline(pipeline)
        assert runs == {"a": 1, "b": 1}

        await own_kafka.resume()
        result = await orchestrator.resume_pipeline(execution_id=seen["execution_id"], wait=10)

        assert result.status == "completed" and result.result == "ab"
        # The failed append's outcome is unknown: the producer may still deliver it once
        # the broker is back, before the resume's ownership event. Either a's completion
        # and b's start are on the log (b was interrupted: it runs again as attempt 2), or
        # neither is (a was interrupted and runs again; b's rerun is its first attempt).
        assert runs["b"] == 2
        assert result.attempts in ({"a": 1, "b": 2}, {"a": 2, "b": 1})
        assert runs["a"] == result.attempts["a"]
        await stack.runtime.wait_for(stack.runtime.written())
        completed = await stack.pool.fetch(
            f"SELECT payload->>'task_id' AS task, count(*) AS n"
            f" FROM {stack.projection.tables.execution_events}"
            " WHERE execution_id = $1 AND outcome = 'applied' AND event_type = 'TaskCompleted'"
            " GROUP BY 1 ORDER BY 1",
            result.execution_id,
        )
        assert [tuple(r) for r in completed] == [("a", 1), ("b", 1)]
        verdict = await verify_eventually(
            bootstrap, stack.topics.pipeline.name, stack.dsn, stack.log.acknowledged
        )
        verdict.check()
