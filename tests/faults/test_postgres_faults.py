"""PostgreSQL SIGKILLed and restarted in place under load: the processor does not
exit, logs the outage once (start and end), catches up, and the read model equals the
fold of the log with nothing lost or applied twice (independent verifier)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from _stack import Load, fault_stack
from _verifier import verify_eventually

from orchestrator.devstack import ApacheKafkaServer, PostgresServer


async def _until(condition: Callable[[], bool], within: float = 120.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - polling a counter
            await asyncio.sleep(0.1)


async def test_postgres_restarted_under_load_processor_rides_out(
    steady_kafka: ApacheKafkaServer,
    own_postgres: PostgresServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bootstrap = steady_kafka.bootstrap_servers
    caplog.set_level(logging.WARNING, logger="orchestrator.projections.processor")
    async with fault_stack(bootstrap, own_postgres.dsn, lease_ttl=5.0) as stack:
        load = Load(stack, executions=4)
        load.start()
        await _until(lambda: load.acked >= 40)

        await own_postgres.kill()  # a crash: every connection drops
        await asyncio.sleep(3)  # the processor meets the outage
        await own_postgres.resume()  # same port, same data directory

        resumed_from = load.acked
        await _until(lambda: load.acked >= resumed_from + 40)
        await load.stop()
        assert not stack.processor.done(), "the processor exited during the outage"

        verdict = await verify_eventually(
            bootstrap, stack.topics.pipeline.name, own_postgres.dsn, stack.log.acknowledged
        )
        print(
            f"verifier: {verdict.records} records, {verdict.executions} executions, "
            f"{verdict.applied} applied, {len(load.failures)} failed commands"
        )
        verdict.check()
    outage_lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "orchestrator.projections.processor" and "unavailable" in r.getMessage()
    ]
    assert len(outage_lines) <= 2, outage_lines  # once per outage, not once per attempt
