"""A single broker SIGKILLed and restarted under load: appends fail with a clear error
within their deadline (or succeed), nothing acknowledged is lost, the processor does
not exit, and the read model equals the fold of the log (independent verifier)."""

from __future__ import annotations

import asyncio

import pytest
from _stack import Load, fault_stack, until

from orchestrator.commands import SaveCheckpoint
from orchestrator.devstack import ApacheKafkaServer, PostgresServer
from orchestrator.events.errors import LogError

DEADLINE_MS = 3000


async def test_broker_killed_under_load_loses_nothing_acknowledged(
    own_kafka: ApacheKafkaServer, own_postgres: PostgresServer
) -> None:
    bootstrap = own_kafka.bootstrap_servers
    async with fault_stack(bootstrap, own_postgres.dsn, delivery_timeout_ms=DEADLINE_MS) as stack:
        load = Load(stack, executions=4)
        load.start()
        await until(lambda: load.acked >= 40)
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
        await until(lambda: load.acked >= resumed_from + 40)
        await load.stop_and_verify()
        assert any("not acknowledged by Kafka" in f for f in [*load.failures, str(caught.value)])
