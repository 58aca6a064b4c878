"""A single broker SIGKILLed and restarted under load: appends fail with a clear error
within their deadline (or succeed), nothing acknowledged is lost, the processor does
not exit, and the read model equals the fold of the log (independent verifier)."""

from __future__ import annotations

import asyncio

import pytest
from _stack import Load, fault_stack
from _verifier import verify_eventually

from orchestrator.commands import SaveCheckpoint
from orchestrator.devstack import ApacheKafkaServer, PostgresServer
from orchestrator.events.errors import LogError

DEADLINE_MS = 3000


async def _until(condition: object, within: float = 120.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110 - polling a counter
            await asyncio.sleep(0.1)


async def test_broker_killed_under_load_loses_nothing_acknowledged(
    own_kafka: ApacheKafkaServer, own_postgres: PostgresServer
) -> None:
    bootstrap = own_kafka.bootstrap_servers
    async with fault_stack(bootstrap, own_postgres.dsn, delivery_timeout_ms=DEADLINE_MS) as stack:
        load = Load(stack, executions=4)
        load.start()
        await _until(lambda: load.acked >= 40)
        probe = next(iter(stack.runtime.writers.values()))

        await own_kafka.kill()
        # An append now fails with the log's own error, naming the broker, instead of
        # hanging (the bound is 10x the deadline: this is not a timing test).
        with pytest.raises(LogError, match="not acknowledged by Kafka") as caught:
            async with asyncio.timeout(10 * DEADLINE_MS / 1000):
                await probe.execute(SaveCheckpoint(name="during-outage"))
        assert bootstrap in str(caught.value)
        assert caught.value.retriable

        await own_kafka.resume()
        resumed_from = load.acked
        # Writing resumes: the writers re-take ownership (the resync path) and go on.
        await _until(lambda: load.acked >= resumed_from + 40)
        await load.stop()
        assert not stack.processor.done(), "the processor exited during the outage"

        verdict = await verify_eventually(
            bootstrap, stack.topics.pipeline.name, own_postgres.dsn, stack.log.acknowledged
        )
        print(
            f"verifier: {verdict.records} records, {verdict.executions} executions, "
            f"{verdict.applied} applied, {len(load.failures)} failed appends"
        )
        verdict.check()
        assert any("not acknowledged by Kafka" in f for f in [*load.failures, str(caught.value)])
