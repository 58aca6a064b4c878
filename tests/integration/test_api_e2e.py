"""End to end: append to Kafka, the real processor folds, the API reads its own writes.

Each append returns a position; a read that passes it sees the write (or gets a
504), and an SSE stream sees every change the processor commits.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from _api_support import execution_stream, sse_events
from _databases import fresh_database

from orchestrator.events import catalogue as c
from orchestrator.events.codec import default_codec
from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.log import EventLog
from orchestrator.events.topics import TopicsConfig, TopicSpec, ensure_topics
from orchestrator.events.userdata import encode_user_data
from orchestrator.projections.api import ApiSettings, create_app
from orchestrator.projections.processor import Projector, prepare
from orchestrator.projections.settings import ProjectionSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@dataclass
class Stack:
    log: EventLog
    topics: TopicsConfig
    base_url: str


@pytest.fixture(scope="module")
async def stack(kafka: Any, postgres: str) -> AsyncIterator[Stack]:
    """Fresh topics and database, a running processor, and the API on a real server."""
    bootstrap = kafka.bootstrap_servers
    topics = TopicsConfig(
        pipeline=TopicSpec(name="orchestrator.pipeline.events", partitions=2),
        shared=TopicSpec(name="orchestrator.shared.events", partitions=1),
    ).with_prefix(f"test-{uuid.uuid4().hex[:10]}.")
    await ensure_topics(bootstrap, topics.specs())
    projection = ProjectionSettings(
        name=f"api_e2e_{uuid.uuid4().hex[:6]}",
        pipeline_topic=topics.pipeline.name,
        shared_topic=topics.shared.name,
    )
    async with fresh_database(postgres, "api_e2e", migrated=False) as dsn:
        await prepare(projection, dsn, bootstrap)
        app = create_app(ApiSettings(database_url=dsn, projection=projection.name))
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None,
                           timeout_graceful_shutdown=1)
        )  # fmt: skip
        async with (
            Projector(projection, dsn, bootstrap) as projector,
            EventLog(
                bootstrap, default_codec(), topics=topics,
                supports_idempotence=kafka.supports_idempotence,
            ) as log,
        ):  # fmt: skip
            folding = asyncio.create_task(projector.run())
            serving = asyncio.create_task(server.serve())
            try:
                while not server.started:
                    assert not serving.done(), "uvicorn stopped before it started"
                    await asyncio.sleep(0.02)
                port = server.servers[0].sockets[0].getsockname()[1]
                yield Stack(log, topics, f"http://127.0.0.1:{port}")
            finally:
                server.should_exit = True
                projector.request_stop()
                await asyncio.wait_for(serving, 10)
                await asyncio.wait_for(folding, 30)


class Writer:
    """One execution's single writer: gapless sequences, UUID event ids."""

    def __init__(self, log: EventLog, execution_id: str) -> None:
        self.log = log
        self.execution_id = execution_id
        self.sequence = 0

    async def emit(self, payload: Any) -> Position:
        self.sequence += 1
        return await self.log.append(
            Envelope(
                execution_id=self.execution_id,
                pipeline_id="research_assistant",
                sequence=self.sequence,
                epoch=1,
                producer="node-1",
                payload=payload,
            )
        )


async def test_reads_with_a_position_see_their_own_writes(stack: Stack) -> None:
    writer = Writer(stack.log, f"exec_{uuid.uuid4().hex[:8]}")
    tasks = (c.TaskSpec(task_id="web_search"),)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
        created = await writer.emit(
            c.ExecutionCreated(pipeline_id="research_assistant", tasks=tasks)
        )
        first = await client.get(
            f"/executions/{writer.execution_id}",
            params={"position": created.token(), "wait_ms": 20_000},
        )
        await writer.emit(c.ExecutionValidationStarted())
        running = await writer.emit(c.ExecutionValidationSucceeded())
        second = await client.get(
            f"/executions/{writer.execution_id}",
            params={"position": running.token(), "wait_ms": 20_000},
        )
        events = await client.get(
            f"/executions/{writer.execution_id}/events",
            params={"position": running.token(), "wait_ms": 20_000},
        )
        beyond = Position(running.topic, running.partition, running.offset + 1_000)
        behind = await client.get(
            f"/executions/{writer.execution_id}",
            params={"position": beyond.token(), "wait_ms": 100},
        )

    assert first.status_code == 200 and first.json()["status"] == "initialized"
    assert second.json()["status"] == "running"
    assert second.json()["position"] == running.token()
    assert [e["event_type"] for e in events.json()["items"]] == [
        "ExecutionCreated", "ExecutionValidationStarted", "ExecutionValidationSucceeded",
    ]  # fmt: skip
    assert behind.status_code == 504


async def test_shared_variables_are_read_after_their_write(stack: Stack) -> None:
    namespace = f"ns_{uuid.uuid4().hex[:8]}"
    written = await stack.log.append(
        Envelope(
            execution_id=None,
            pipeline_id=None,
            sequence=None,
            epoch=0,
            producer="node-1",
            payload=c.SharedVariableSet(
                namespace=namespace, name="quality_threshold", type="float",
                value=encode_user_data(0.8), immutable=True, updated_by="setup", version=1,
            ),
        )
    )  # fmt: skip
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
        response = await client.get(
            f"/namespaces/{namespace}/variables",
            params={"position": written.token(), "wait_ms": 20_000},
        )

    assert response.status_code == 200
    variable = response.json()["variables"]["quality_threshold"]
    assert (variable["value"], variable["immutable"], variable["version"]) == (0.8, True, 1)


async def test_a_stream_follows_an_execution_as_the_processor_folds_it(stack: Stack) -> None:
    writer = Writer(stack.log, f"exec_{uuid.uuid4().hex[:8]}")
    tasks = (c.TaskSpec(task_id="fetch"),)
    created = await writer.emit(c.ExecutionCreated(pipeline_id="research_assistant", tasks=tasks))
    seen: list[str] = []
    async with execution_stream(
        stack.base_url,
        writer.execution_id,
        http_timeout=30,
        position=created.token(),
        wait_ms=20_000,
    ) as response:
        events = sse_events(response)
        async with asyncio.timeout(60):
            seen.append(json.loads((await anext(events))["data"])["status"])
            await writer.emit(c.ExecutionValidationStarted())
            await writer.emit(c.ExecutionValidationSucceeded())
            await writer.emit(c.ExecutionCompleted())
            while seen[-1] != "completed":
                seen.append(json.loads((await anext(events))["data"])["status"])

    # Bursts may coalesce, but the order never goes back and the end is seen.
    order = ["initialized", "validating", "running", "completed"]
    assert seen[0] == "initialized" and seen[-1] == "completed"
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen)
