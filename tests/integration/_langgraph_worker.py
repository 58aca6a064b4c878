"""A process that runs a three-node LangGraph graph on ``AsyncKafkaSaver``.

``python _langgraph_worker.py SPEC.json``: runs (or, with ``resume``, resumes) thread
``spec["thread_id"]``. Each node appends its name to ``spec["marks"]`` when it starts;
with ``hang_in`` set, that node prints ``{"event": "hanging"}`` and waits to be
killed. On success it prints ``{"event": "done", "steps": [...]}``.
"""

from __future__ import annotations

import asyncio
import json
import operator
import sys
from pathlib import Path
from typing import Annotated, Any, TypedDict

from _langgraph_support import chain, open_saver
from langgraph.graph import StateGraph


class Steps(TypedDict):
    steps: Annotated[list[str], operator.add]


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def _mark(marks: Path, name: str) -> None:
    with marks.open("a") as f:
        f.write(name + "\n")


def build(spec: dict[str, Any]) -> StateGraph[Steps]:
    marks = Path(spec["marks"])

    def node(name: str) -> Any:
        async def run(state: Steps) -> dict[str, list[str]]:
            await asyncio.to_thread(_mark, marks, name)
            if spec.get("hang_in") == name:
                emit("hanging", node=name)
                await asyncio.sleep(3600)
            return {"steps": [name]}

        return run

    graph: StateGraph[Steps] = chain(Steps, ("fetch", "summarize", "report"), node)
    return graph


async def main(spec: dict[str, Any]) -> None:
    config = {"configurable": {"thread_id": spec["thread_id"]}}
    async with open_saver(spec, node_id=spec["node_id"], run_projector=False) as saver:
        app = build(spec).compile(checkpointer=saver)
        start = None if spec.get("resume") else {"steps": []}
        result = await app.ainvoke(start, config, durability="sync")
        emit("done", steps=result["steps"])


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
