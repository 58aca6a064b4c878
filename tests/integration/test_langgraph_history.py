"""What only we give LangGraph users: ``replay``, ``check``, ``fork`` and the timeline
work on a thread written by ``AsyncKafkaSaver`` (time travel to any event of it, not
just to a stored checkpoint).

A three-node ``StateGraph`` runs with the saver against the session's real servers;
the CLI commands and the API's timeline then read its execution ``langgraph:<thread>``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypedDict

import httpx
import pytest
from _databases import fresh_database
from _history_support import cli
from _langgraph_support import chain, open_saver, saver_spec

from orchestrator.devstack import ServiceEndpoints

pytest.importorskip(
    "langgraph.graph",
    reason="LangGraph is an optional extra: pip install -e '.[langgraph]'",
)


class Notes(TypedDict):
    notes: list[str]


@dataclass
class Thread:
    execution_id: str
    pipeline_id: str
    events: list[tuple[int, str, dict[str, Any]]]  # (sequence, event type, payload)
    args: list[str]  # where the CLI finds the servers, topics and read model
    dsn: str
    tables: Any
    projection: str


def _graph() -> Any:
    def node(name: str) -> Any:
        def run(state: Notes) -> dict[str, list[str]]:
            return {"notes": [*state["notes"], name]}

        return run

    return chain(Notes, ("plan", "draft", "review"), node)


@pytest.fixture(scope="module")
async def thread(
    services: ServiceEndpoints, postgres: str, tmp_path_factory: Any
) -> AsyncIterator[Thread]:
    async with fresh_database(postgres, "lg_history", migrated=False) as dsn:
        spec = saver_spec(services, dsn, tmp_path_factory.mktemp("lg-history"))
        async for found in _run_thread(spec, services):
            yield found


async def _run_thread(spec: dict[str, Any], services: ServiceEndpoints) -> AsyncIterator[Thread]:
    thread_id = f"t-{uuid.uuid4().hex[:8]}"
    async with open_saver(spec, node_id="history") as saver:
        await saver.setup()
        app = _graph().compile(checkpointer=saver)
        config: Any = {"configurable": {"thread_id": thread_id}}
        done = await app.ainvoke({"notes": []}, config)
        assert done == {"notes": ["plan", "draft", "review"]}
        rt = saver.runtime
        await rt.wait_for(rt.written())
        eid = f"langgraph:{thread_id}"
        rows = await rt.pool.fetch(
            "SELECT sequence, event_type, payload FROM"
            f" {rt.read_model.tables.execution_events} WHERE execution_id = $1"
            " AND outcome = 'applied' AND sequence IS NOT NULL ORDER BY sequence",
            eid,
        )
        events = [(r["sequence"], r["event_type"], json.loads(r["payload"])) for r in rows]
        args = [
            "--database-url",
            spec["env"]["DATABASE_URL"],
            "--projection",
            spec["projection_name"],
            "--pipeline-topic",
            rt.log.topics.pipeline.name,
            "--bootstrap-servers",
            services.kafka_bootstrap,
        ]
        yield Thread(
            eid,
            eid,
            events,
            args,
            spec["env"]["DATABASE_URL"],
            rt.read_model.tables,
            spec["projection_name"],
        )


def _between_checkpoints(thread: Thread) -> int:
    """A sequence that is no checkpoint: the last pending writes put after the first
    checkpoint (the graph's input) and before the second."""
    saved = [s for s, t, _ in thread.events if t == "CheckpointSaved"]
    assert len(saved) >= 4, thread.events  # input, plan, draft, review
    writes = [
        s for s, t, _ in thread.events if t == "CheckpointWritesSaved" and saved[0] < s < saved[1]
    ]
    assert writes, thread.events
    return writes[-1]


async def test_replay_travels_to_an_event_between_two_checkpoints(thread: Thread) -> None:
    at = _between_checkpoints(thread)
    result = await cli("replay", thread.execution_id, "--seq", at, "--json", *thread.args)
    assert result.exit_code == 0, result.output
    state = json.loads(result.stdout)
    assert state["execution_id"] == thread.execution_id
    assert state["last_sequence"] == at
    assert len(state["checkpoints"]) == 1  # the one saved before that event, not more

    latest = await cli("replay", thread.execution_id, "--json", *thread.args)
    assert latest.exit_code == 0, latest.output
    assert json.loads(latest.stdout)["last_sequence"] == thread.events[-1][0]

    diff = await cli("replay", thread.execution_id, "--diff", "--json", *thread.args)
    assert diff.exit_code == 0, diff.output
    steps = [json.loads(line) for line in diff.stdout.splitlines()]
    assert len(steps) == len(thread.events)
    assert {"CheckpointSaved", "CheckpointWritesSaved"} <= {s["event_type"] for s in steps}

    text = await cli("replay", thread.execution_id, "--diff", *thread.args)
    assert text.exit_code == 0, text.output
    assert "CheckpointWritesSaved" in text.stdout


async def test_check_finds_the_langgraph_thread_consistent(thread: Thread) -> None:
    result = await cli("check", "--pipeline", thread.pipeline_id, "--json", *thread.args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["consistent"] is True and report["executions_checked"] >= 1, report


async def test_fork_starts_a_new_execution_from_the_thread_at_a_sequence(thread: Thread) -> None:
    at = _between_checkpoints(thread)
    new_id = f"fork-{uuid.uuid4().hex[:8]}"
    result = await cli(
        "fork", thread.execution_id, "--seq", at, "--id", new_id, "--json", *thread.args
    )
    assert result.exit_code == 0, result.output
    fork = json.loads(result.stdout)
    assert fork["execution_id"] == new_id
    assert (fork["forked_from"], fork["fork_sequence"]) == (thread.execution_id, at)
    assert len(fork["copied_checkpoints"]) == 1
    topic = thread.args[thread.args.index("--pipeline-topic") + 1]
    assert fork["position"].startswith(f"{topic}:")  # on the thread's own topic

    # From the log: the fork's events are there at once; the archive may still be behind.
    replayed = await cli("replay", new_id, "--source", "log", "--json", *thread.args)
    assert replayed.exit_code == 0, replayed.output
    assert len(json.loads(replayed.stdout)["checkpoints"]) == 1


async def test_the_timeline_shows_every_event_of_the_thread(thread: Thread) -> None:
    from orchestrator.projections.api import ApiSettings, create_app

    settings = ApiSettings(
        database_url=thread.dsn, tables=thread.tables, projection=thread.projection
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            base = f"/executions/{thread.execution_id}"
            timeline = await client.get(f"{base}/timeline.json")
            assert timeline.status_code == 200, timeline.text
            body = timeline.json()
            page = await client.get(f"{base}/timeline")
            assert page.status_code == 200, page.text
    types = [e[1] for e in body["events"]]  # [sequence, type, subject, at, outcome, offset]
    assert body["events_total"] == len(types) == len(thread.events)
    assert len(body["checkpoints"]) == len(
        [t for _, t, _ in thread.events if t == "CheckpointSaved"]
    )
    assert {"CheckpointSaved", "CheckpointWritesSaved"} <= set(types)
