"""A three-node LangGraph graph whose checkpoints are events in Kafka.

Start the servers once, in another terminal::

    orchestrator-state services up        # prints the exports below; keep it running
    export KAFKA_BOOTSTRAP_SERVERS=... DATABASE_URL=... S3_ENDPOINT_URL=...

Then::

    python examples/langgraph/research_graph.py run  --thread demo-1 --crash
    # the process dies (os._exit) inside "summarize", after "fetch" was checkpointed
    python examples/langgraph/research_graph.py run  --thread demo-1
    # resumes at "summarize": "fetch" does not run again
    python examples/langgraph/research_graph.py history --thread demo-1
    orchestrator-state replay langgraph:demo-1 --diff   # every event of the thread
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import os
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from orchestrator.langgraph import AsyncKafkaSaver


class Research(TypedDict):
    topic: str
    notes: Annotated[list[str], operator.add]


def build(crash: bool) -> StateGraph[Research]:
    async def fetch(state: Research) -> dict[str, Any]:
        print(f"fetch: reading about {state['topic']}")
        return {"notes": [f"3 sources on {state['topic']}"]}

    async def summarize(state: Research) -> dict[str, Any]:
        print("summarize: working...")
        if crash:
            print("summarize: crashing (simulated power loss)")
            os._exit(137)
        return {"notes": ["summary: it depends"]}

    async def report(state: Research) -> dict[str, Any]:
        print("report:", " | ".join(state["notes"]))
        return {"notes": ["report written"]}

    graph = StateGraph(Research)
    graph.add_node("fetch", fetch)
    graph.add_node("summarize", summarize)
    graph.add_node("report", report)
    graph.add_edge(START, "fetch")
    graph.add_edge("fetch", "summarize")
    graph.add_edge("summarize", "report")
    graph.add_edge("report", END)
    return graph


async def run(thread: str, crash: bool) -> None:
    config: Any = {"configurable": {"thread_id": thread}}
    async with AsyncKafkaSaver.from_env() as saver:
        await saver.setup()
        app = build(crash).compile(checkpointer=saver)
        resume = await saver.aget_tuple(config) is not None
        start = None if resume else {"topic": "event sourcing", "notes": []}
        print("resuming from the last checkpoint" if resume else "starting a new thread")
        result = await app.ainvoke(start, config, durability="sync")
        print("done:", result["notes"])


async def history(thread: str) -> None:
    config: Any = {"configurable": {"thread_id": thread}}
    async with AsyncKafkaSaver.from_env() as saver:
        async for item in saver.alist(config):
            md = item.metadata
            print(
                item.checkpoint["id"],
                md.get("source"),
                md.get("step"),
                item.checkpoint["channel_values"].get("notes"),
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "history"])
    parser.add_argument("--thread", default="demo-1")
    parser.add_argument("--crash", action="store_true", help="die inside 'summarize'")
    args = parser.parse_args()
    if args.command == "run":
        asyncio.run(run(args.thread, args.crash))
    else:
        asyncio.run(history(args.thread))


if __name__ == "__main__":
    main()
