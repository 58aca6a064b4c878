"""``StateManager``: reads of pipeline, task and shared state, and shared-state writes.

Reads come from the read-model tables (what the projection committed). By default a
read returns what is there now (``consistency="eventual"``); ``"strong"`` first waits
until the read model has applied every write this manager made, and every write of
its runtime (this process's writers, checkpoints, batches: read-your-writes),
and ``position=`` (a :class:`Position` or its token) waits for that write. Writes
return the position of their event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from orchestrator.commands.lock import LockInfo, list_locks
from orchestrator.events.envelope import Position
from orchestrator.events.state import ExecutionState, SharedVariable, TaskState
from orchestrator.events.userdata import BlobStore, resolve_blob_markers
from orchestrator.state.errors import StateNotFound
from orchestrator.state.runtime import StateRuntime, current_runtime, current_task

Consistency = Literal["eventual", "strong"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedStateView:
    """The seed's ``shared_state`` block: a namespace's variables and its locks.

    A namespace's locks are the ``DistributedLock`` s named ``<namespace>/<resource>``.
    """

    namespace: str
    variables: Mapping[str, SharedVariable]
    locks: list[LockInfo]


class StateManager:
    """The seed's ``StateManager``; ``runtime`` defaults to the configured one."""

    def __init__(self, runtime: StateRuntime | None = None) -> None:
        self._runtime = runtime
        self._written: dict[tuple[str, int], int] = {}

    @property
    def runtime(self) -> StateRuntime:
        return self._runtime or current_runtime("StateManager")

    # --- consistency ---------------------------------------------------------------

    def written(self) -> list[Position]:
        """The latest position this manager wrote, per partition."""
        return [Position(t, p, o) for (t, p), o in sorted(self._written.items())]

    def _record(self, position: Position) -> Position:
        key = (position.topic, position.partition)
        self._written[key] = max(position.offset, self._written.get(key, -1))
        self.runtime.record([position])
        return position

    async def wait_for(self, positions: Iterable[Position | str]) -> None:
        """Wait until the read model has applied ``positions`` (or their tokens)."""
        parsed = [p if isinstance(p, Position) else Position.parse(p) for p in positions]
        await self.runtime.wait_for(parsed)

    async def _consistent(self, consistency: Consistency, position: Position | str | None) -> None:
        if consistency not in ("eventual", "strong"):
            raise ValueError(f"consistency must be 'eventual' or 'strong', not {consistency!r}")
        if position is not None:
            await self.wait_for([position])
        if consistency == "strong":
            await self.wait_for([*self.written(), *self.runtime.written()])

    # --- pipeline and task state ---------------------------------------------------

    async def get_pipeline_state(
        self,
        execution_id: str,
        consistency: Consistency = "eventual",
        position: Position | str | None = None,
    ) -> ExecutionState:
        """The execution's state (``state.status``, ``state.tasks``...); ``StateNotFound``
        if the read model has no such execution."""
        await self._consistent(consistency, position)
        state = await self.runtime.state_reader.load_execution(execution_id)
        if state is None:
            raise StateNotFound("execution", execution_id)
        return state

    async def get_task_state(
        self,
        execution_id: str,
        task_id: str,
        consistency: Consistency = "eventual",
        position: Position | str | None = None,
    ) -> TaskState:
        """One task's state, its claim-checked inputs/outputs fetched and verified."""
        state = await self.get_pipeline_state(execution_id, consistency, position)
        task = state.tasks.get(task_id)
        if task is None:
            raise StateNotFound("task", f"{task_id} of execution {execution_id}")
        store = self.runtime.blob_store
        if store is None:
            return task
        inputs, outputs = await asyncio.gather(
            _resolve(task.inputs, store), _resolve(task.outputs, store)
        )
        return replace(task, inputs=inputs, outputs=outputs)

    # --- shared state --------------------------------------------------------------

    async def get_variable(
        self,
        namespace: str,
        name: str,
        consistency: Consistency = "eventual",
        position: Position | str | None = None,
    ) -> SharedVariable | None:
        """The variable (value fetched if claim-checked), ``None`` if absent or deleted."""
        await self._consistent(consistency, position)
        var = await self.runtime.shared.get(namespace, name)
        store = self.runtime.blob_store
        if var is None or store is None:
            return var
        return replace(var, value=await _resolve(var.value, store))

    async def set_variable(
        self,
        namespace: str,
        name: str,
        value: Any,
        *,
        type: str | None = None,
        expected_version: int | None = None,
        immutable: bool = False,
        updated_by: str | None = None,
    ) -> Position:
        """Set a variable; with ``expected_version`` only if it is still that version
        (0: only if it does not exist). ``updated_by`` defaults to the running task."""
        task = current_task()
        position = await self.runtime.shared.set(
            namespace,
            name,
            value,
            type=type,
            expected_version=expected_version,
            immutable=immutable,
            updated_by=updated_by or (task.task_id if task else None),
        )
        return self._record(position)

    async def delete_variable(
        self,
        namespace: str,
        name: str,
        *,
        expected_version: int | None = None,
        deleted_by: str | None = None,
    ) -> Position:
        """Delete a variable (refused if immutable or at another ``expected_version``)."""
        task = current_task()
        position = await self.runtime.shared.delete(
            namespace,
            name,
            expected_version=expected_version,
            deleted_by=deleted_by or (task.task_id if task else None),
        )
        return self._record(position)

    async def get_shared_state(
        self,
        namespace: str,
        consistency: Consistency = "eventual",
        position: Position | str | None = None,
    ) -> SharedStateView:
        """The namespace's live variables and locks, as the seed's ``shared_state``."""
        await self._consistent(consistency, position)
        rt = self.runtime
        ns = await rt.read_model.load_namespace(namespace)
        locks = await list_locks(rt.pool, prefix=f"{namespace}/")
        live = {k: v for k, v in ns.variables.items() if not v.deleted}
        return SharedStateView(namespace=namespace, variables=live, locks=locks)


async def _resolve(value: Any, store: BlobStore) -> Any:
    if isinstance(value, dict) and set(value) == {"$blob"}:
        return await asyncio.to_thread(resolve_blob_markers, value, store)
    return value
