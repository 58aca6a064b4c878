"""What the event log gives a LangGraph graph that LangGraph's own savers do not.

* A graph whose process is SIGKILLed mid-node resumes, in a new process, from its
  last checkpoint: the nodes that finished do not run again.
* Two workers on one thread: the one that takes the thread over wins; the other's
  write, sent after it lost the lease without noticing (a pause between its lease check
  and its send), is fenced: every fold drops it, and the archive records it with the
  verdict ``stale_epoch``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from _langgraph_support import MakeSaverSpec, open_saver

from orchestrator.commands import LeaseLost

pytest.importorskip(
    "langgraph.graph", reason="LangGraph is an optional extra: pip install -e '.[langgraph]'"
)

HERE = Path(__file__).parent


async def _worker(spec: dict[str, Any], tmp_path: Path, name: str) -> asyncio.subprocess.Process:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{HERE.parent.parent}"}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "_langgraph_worker.py"),
        str(path),
        stdout=subprocess.PIPE,
        env=env,
    )


async def _until(proc: asyncio.subprocess.Process, event: str) -> dict[str, Any]:
    assert proc.stdout is not None
    async for line in proc.stdout:
        message = json.loads(line)
        if message["event"] == event:
            return dict(message)
    raise AssertionError(f"the worker exited ({await proc.wait()}) before {event!r}")


async def test_a_sigkilled_graph_resumes_from_its_last_checkpoint_in_a_new_process(
    make_saver_spec: MakeSaverSpec, tmp_path: Path
) -> None:
    spec = await make_saver_spec(lease_ttl=2.0)
    marks = tmp_path / "marks"
    spec.update(thread_id=f"t-{uuid.uuid4().hex[:8]}", marks=str(marks))
    async with open_saver(spec, node_id="reader") as saver:  # runs the projector
        await saver.setup()
        first = await _worker(
            {**spec, "node_id": "worker-1", "hang_in": "summarize"}, tmp_path, "w1"
        )
        await asyncio.wait_for(_until(first, "hanging"), 120)
        first.send_signal(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL

        second = await _worker({**spec, "node_id": "worker-2", "resume": True}, tmp_path, "w2")
        done = await asyncio.wait_for(_until(second, "done"), 120)
        assert await second.wait() == 0

        assert done["steps"] == ["fetch", "summarize", "report"]
        # fetch ran once; summarize was interrupted and ran again; report once.
        assert marks.read_text().split() == ["fetch", "summarize", "summarize", "report"]
        latest = await saver.aget_tuple({"configurable": {"thread_id": spec["thread_id"]}})
        assert latest is not None
        assert latest.checkpoint["channel_values"]["steps"] == done["steps"]


class _Paused:
    """An appender that holds one send until released: a process paused (GC, network)
    between its lease check and its send."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sending = asyncio.Event()
        self.release = asyncio.Event()

    async def append_batch(self, envelopes: Any, topic: Any = None) -> Any:
        self.sending.set()
        await self.release.wait()
        return await self.inner.append_batch(envelopes, topic)


def _checkpoint(n: int) -> dict[str, Any]:
    from langgraph.checkpoint.base import empty_checkpoint

    cp = dict(empty_checkpoint())
    cp["channel_values"] = {"n": n}
    return cp


async def test_two_workers_on_one_thread_the_loser_is_fenced_and_history_shows_it(
    make_saver_spec: MakeSaverSpec, tmp_path: Path
) -> None:
    spec = await make_saver_spec(lease_ttl=2.0)
    config = {"configurable": {"thread_id": f"t-{uuid.uuid4().hex[:8]}", "checkpoint_ns": ""}}
    async with (
        open_saver(spec, node_id="worker-a") as a,
        open_saver(spec, node_id="worker-b", run_projector=False) as b,
    ):
        await a.setup()
        first = await a.aput(config, _checkpoint(1), {"step": 1}, {})
        [(eid, writer)] = a.runtime.writers.items()
        assert writer._renewer is not None
        writer._renewer.cancel()  # the pause also stops renewing the lease
        paused = writer.log = _Paused(writer.log)
        zombie_cp = _checkpoint(2)
        zombie = asyncio.create_task(a.aput(first, zombie_cp, {"step": 2, "by": "a"}, {}))
        await paused.sending.wait()

        winner_cp = _checkpoint(3)
        await b.aput(first, winner_cp, {"step": 2, "by": "b"}, {})  # takes the thread over
        paused.release.set()
        await zombie  # the zombie does not know
        await a.runtime.wait_for(a.runtime.written())

        latest = await b.aget_tuple({"configurable": dict(config["configurable"])})
        assert latest is not None and latest.checkpoint["id"] == winner_cp["id"]
        listed = [t.checkpoint["id"] async for t in b.alist(config)]
        assert zombie_cp["id"] not in listed
        rows = await b.runtime.pool.fetch(
            f"SELECT epoch, outcome FROM {b.runtime.read_model.tables.execution_events}"
            " WHERE execution_id = $1 AND event_type = 'CheckpointSaved' ORDER BY \"offset\"",
            eid,
        )
        assert [(r["epoch"], r["outcome"]) for r in rows] == [
            (1, "applied"),
            (2, "applied"),
            (1, "stale_epoch"),
        ]
        with pytest.raises(LeaseLost):  # the loser's next write is refused outright
            await a.aput(first, _checkpoint(4), {"step": 3}, {})
