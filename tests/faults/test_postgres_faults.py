"""PostgreSQL SIGKILLed and restarted in place under load: the processor does not
exit, logs the outage once (start and end), catches up, and the read model equals the
fold of the log with nothing lost or applied twice (independent verifier)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from _stack import Load, fault_stack, until

from orchestrator.devstack import ApacheKafkaServer, PostgresServer


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
        await until(lambda: load.acked >= 40)

        await own_postgres.kill()  # a crash: every connection drops
        await asyncio.sleep(3)  # the processor meets the outage
        await own_postgres.resume()  # same port, same data directory

        resumed_from = load.acked
        await until(lambda: load.acked >= resumed_from + 40)
        await load.stop_and_verify()
    outage_lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "orchestrator.projections.processor" and "unavailable" in r.getMessage()
    ]
    assert len(outage_lines) <= 2, outage_lines  # once per outage, not once per attempt
