"""``synchronization.strategy`` and ``conflict_resolution`` applied to ``StateManager`` reads
and shared-variable writes.

* ``strong``: every read first waits until the read model has applied every write this
  process made (through any writer or manager of its runtime);
* ``causal``: a session: each manager waits for its own writes and for the positions it
  was shown (``observe(token)``, e.g. a token another service passed along);
* ``eventual``: reads return what the read model holds now.

``conflict_resolution: reject`` makes a shared-variable write without
``expected_version`` expect the version this manager last read (0 if it never read
the variable), so a concurrent write in between is refused (``StaleExpectedVersion``)
instead of overwritten; ``last_write_wins`` writes without a version check.
"""

from __future__ import annotations

from typing import Any

from orchestrator.events.envelope import Position
from orchestrator.events.state import ExecutionState, SharedVariable, TaskState
from orchestrator.state.manager import Consistency, StateManager
from orchestrator.state.runtime import StateRuntime


class ConfiguredStateManager(StateManager):
    """A ``StateManager`` whose defaults come from the ``distributed`` settings."""

    def __init__(
        self,
        runtime: StateRuntime | None = None,
        *,
        strategy: str = "eventual",
        conflict_resolution: str = "last_write_wins",
    ) -> None:
        super().__init__(runtime)
        if strategy not in ("strong", "eventual", "causal"):
            raise ValueError(f"synchronization.strategy {strategy!r}")
        self.strategy = strategy
        self.conflict_resolution = conflict_resolution
        self._observed: list[Position] = []
        self._versions: dict[tuple[str, str], int] = {}

    def observe(self, position: Position | str) -> None:
        """Remember a position this session depends on (``causal``: reads wait for it)."""
        self._observed.append(
            position if isinstance(position, Position) else Position.parse(position)
        )

    async def _before_read(self, consistency: Consistency | None) -> Consistency:
        if consistency is not None:
            return consistency
        if self.strategy == "strong":
            await self.runtime.wait_for(self.runtime.written())
        elif self.strategy == "causal":
            await self.runtime.wait_for([*self.written(), *self._observed])
        return "eventual"

    async def get_pipeline_state(
        self,
        execution_id: str,
        consistency: Consistency | None = None,
        position: Position | str | None = None,
    ) -> ExecutionState:
        mode = await self._before_read(consistency)
        return await super().get_pipeline_state(execution_id, mode, position)

    async def get_task_state(
        self,
        execution_id: str,
        task_id: str,
        consistency: Consistency | None = None,
        position: Position | str | None = None,
    ) -> TaskState:
        mode = await self._before_read(consistency)
        return await super().get_task_state(execution_id, task_id, mode, position)

    async def get_variable(
        self,
        namespace: str,
        name: str,
        consistency: Consistency | None = None,
        position: Position | str | None = None,
    ) -> SharedVariable | None:
        mode = await self._before_read(consistency)
        var = await super().get_variable(namespace, name, mode, position)
        self._versions[(namespace, name)] = 0 if var is None else var.version
        return var

    async def set_variable(self, namespace: str, name: str, value: Any, **options: Any) -> Position:
        if self.conflict_resolution == "reject" and options.get("expected_version") is None:
            options["expected_version"] = self._versions.get((namespace, name), 0)
        position = await super().set_variable(namespace, name, value, **options)
        expected = options.get("expected_version")
        if expected is None:
            self._versions.pop((namespace, name), None)
        else:
            self._versions[(namespace, name)] = expected + 1
        return position
