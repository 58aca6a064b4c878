"""The seed's "State Machines" example, verbatim between the markers, and the helpers
its hooks call (recorded in ``calls``): shared by the unit test of ``StateMachine`` and
the seed-examples test, which runs it inside a task."""

# The seed's code keeps its list attributes, and `ruff format` leaves it alone.
# ruff: noqa: RUF012

from __future__ import annotations

# --- seed ---
# fmt: off
from orchestrator.state import StateMachine


class PipelineStateMachine(StateMachine):
    states = [
        "initialized",
        "validating",
        "running",
        "paused",
        "completed",
        "failed",
        "cancelled"
    ]

    transitions = [
        {"from": "initialized", "to": "validating", "on": "start"},
        {"from": "validating", "to": "running", "on": "validation_success"},
        {"from": "validating", "to": "failed", "on": "validation_failure"},
        {"from": "running", "to": "paused", "on": "pause"},
        {"from": "paused", "to": "running", "on": "resume"},
        {"from": "running", "to": "completed", "on": "finish"},
        {"from": "running", "to": "failed", "on": "error"},
        {"from": ["running", "paused"], "to": "cancelled", "on": "cancel"}
    ]

    async def on_enter_running(self):
        await self.start_monitoring()

    async def on_exit_running(self):
        await self.stop_monitoring()
        await self.create_checkpoint()
# fmt: on
# --- end of seed ---


class RecordedHooks:
    """The helpers the seed's hooks call (it leaves them undefined): each records its name."""

    calls: list[str]

    async def start_monitoring(self) -> None:
        self.calls.append("start_monitoring")

    async def stop_monitoring(self) -> None:
        self.calls.append("stop_monitoring")

    async def create_checkpoint(self) -> None:
        self.calls.append("create_checkpoint")
