"""PostgreSQL SIGKILLed and restarted while the supervisor recovers a batch of crashed
executions: every one of them is resumed to completion, none is stranded as running
under the dead owner (a failure users of DBOS report), and the independent verifier
finds the read model equal to the fold of the log.

A worker process (tests/integration/_worker.py) runs 20 executions and is SIGKILLed
while each holds inside ``fetch`` after its checkpoint. The test process runs the
processor and the recovery supervisor on a PostgreSQL of its own; as soon as the
supervisor has started resuming them (each resumed ``fetch`` holds 2 s), PostgreSQL is
SIGKILLed, stays down 3 s, and is restarted in place.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from _verifier import verify_eventually

from orchestrator.devstack import ApacheKafkaServer, PostgresServer, ServiceEndpoints
from tests.integration._worker import WorkerProcess, make_pipeline, marks_of, supervising_app

BATCH = 20


@pytest.mark.timeout(480)
async def test_postgres_restart_during_batch_recovery_strands_nothing(
    steady_kafka: ApacheKafkaServer, own_postgres: PostgresServer, tmp_path: Path
) -> None:
    services = ServiceEndpoints(
        kafka_bootstrap=steady_kafka.bootstrap_servers,
        kafka_supports_idempotence=steady_kafka.supports_idempotence,
        database_url=own_postgres.dsn,
    )
    async with supervising_app(
        services,
        own_postgres.dsn,
        tmp_path,
        name="pgsup",
        node_id="supervisor-node",
        crash_timeout=3.0,
        failover_timeout=60,
        # An interrupted attempt counts against the retry budget; on this loaded machine
        # a lease renewal can also time out, so leave room beyond the one crash.
        max_attempts=10,
        pipelines=[make_pipeline(tmp_path)],
    ) as app:
        assert app.runtime is not None and app.orchestrator is not None
        worker = WorkerProcess(
            {
                "config": app.config_text,  # type: ignore[attr-defined]
                "env": services.as_env(),
                "node_id": "worker-node",
                "projection": app.plan.projection.name,
                "marks": str(tmp_path),
                "supervise": False,
                "submit": [{"hold": 600, "resume_hold": 2.0}] * BATCH,
            },
            tmp_path,
        )
        try:
            await worker.start()
            eids = worker.submitted
            deadline = time.monotonic() + 60
            while not all(
                ("fetch:checkpointed", 1, "worker-node") in marks_of(tmp_path, e) for e in eids
            ):
                assert time.monotonic() < deadline, "the worker did not reach its checkpoints"
                await asyncio.sleep(0.05)
            worker.kill()
        finally:
            worker.kill()
            await worker.close()

        # The supervisor starts resuming the batch: PostgreSQL crashes in the middle.
        deadline = time.monotonic() + 60
        while not app.orchestrator.running:
            assert time.monotonic() < deadline, "the supervisor resumed nothing"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)  # a few more taken over, their resumed fetch holding
        resuming = len(app.orchestrator.running)
        await own_postgres.kill()
        await asyncio.sleep(3)
        await own_postgres.resume()
        print(f"PostgreSQL killed with {resuming} of {BATCH} executions being resumed")

        deadline = time.monotonic() + 180
        while True:
            rows = await app.runtime.pool.fetch(
                "SELECT execution_id, status, owner FROM "
                f"{app.plan.projection.tables.pipeline_states}"
            )
            states = {r["execution_id"]: (r["status"], r["owner"]) for r in rows}
            pending = {e: s for e, s in states.items() if s[0] != "completed"}
            if len(states) == BATCH and not pending:
                break
            assert time.monotonic() < deadline, f"not completed: {pending}"
            await asyncio.sleep(0.2)
        assert set(states) == set(eids)
        assert {owner for _, owner in states.values()} == {"supervisor-node"}
        for eid in eids:
            assert ("report:done", 1, "supervisor-node") in marks_of(tmp_path, eid)

        completions = await app.runtime.pool.fetch(
            "SELECT execution_id, payload->>'task_id' AS task, count(*) AS n"
            f" FROM {app.plan.projection.tables.execution_events}"
            " WHERE outcome = 'applied' AND event_type = 'TaskCompleted' GROUP BY 1, 2"
        )
        assert [tuple(r) for r in completions if r["n"] != 1] == []
        assert len(completions) == 3 * BATCH  # init, fetch, report: each once

        verdict = await verify_eventually(
            steady_kafka.bootstrap_servers, app.plan.projection.pipeline_topic, own_postgres.dsn, []
        )
        print(f"verifier: {verdict.records} records, {verdict.executions} executions")
        verdict.check()
