"""``StateManager``: reads of pipeline, task and shared state, and shared-state writes.

Reads come from the read-model tables (what the projection committed), through the
runtime's state cache when ``caching`` configures levels. What a read must reflect is
decided in one place, ``orchestrator.state.sync``, from ``consistency`` (default: the
configured ``synchronization.strategy``):

* ``"strong"``: every write this manager and its runtime made (read-your-writes);
* ``"causal"``: this manager's session: its own writes and every position it has seen
  (its reads, and tokens from elsewhere: :meth:`observe`; pass :meth:`session_token`
  to another process or to the API's ``Orchestrator-Session`` header);
* ``"eventual"``: what is there now, cached for at most ``sync_interval``.

``position=`` (a :class:`Position`, its token or a session token) waits for that write
whatever the strategy. Writes return the position of their event.

``conflict_resolution``: ``last_write_wins`` writes a variable without a version check
unless ``expected_version`` is given (compare-and-set); ``reject`` makes every write
without ``expected_version`` expect the version this manager last read (0 if it never
read it), so a concurrent write in between is refused with ``StaleExpectedVersion``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from orchestrator.commands import DeleteVariable, LockInfo, SetVariable, list_locks
from orchestrator.events import (
    ExecutionState,
    NamespaceState,
    Position,
    SharedVariable,
    TaskState,
    namespace_scope,
    timed_async,
)
from orchestrator.state.cache import EXECUTION, NAMESPACE
from orchestrator.state.errors import StateNotFound
from orchestrator.state.running_task import current_task
from orchestrator.state.sealed import open_state
from orchestrator.state.services import StateRuntime, current_runtime
from orchestrator.state.sync import ReadNeed, Session

Consistency = Literal["eventual", "strong", "causal"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedStateView:
    """The seed's ``shared_state`` block: a namespace's variables and its locks.

    A namespace's locks are the ``DistributedLock`` s named ``<namespace>/<resource>``.
    """

    namespace: str
    variables: Mapping[str, SharedVariable]
    locks: list[LockInfo]


class StateManager:
    """The seed's ``StateManager``; ``runtime`` defaults to the configured one,
    ``strategy`` and ``conflict_resolution`` to the runtime's ``synchronization``."""

    def __init__(
        self,
        runtime: StateRuntime | None = None,
        *,
        strategy: Consistency | None = None,
        conflict_resolution: str | None = None,
        session: Session | str | None = None,
    ) -> None:
        self._runtime = runtime
        self._strategy = strategy
        self._conflict = conflict_resolution
        self._written: dict[tuple[str, int], int] = {}
        self.session = session if isinstance(session, Session) else Session()
        if isinstance(session, str):
            self.session.observe(session)
        self._versions: dict[tuple[str, str], int] = {}

    @property
    def runtime(self) -> StateRuntime:
        return self._runtime or current_runtime("StateManager")

    @property
    def strategy(self) -> Consistency:
        return self._strategy or self.runtime.sync.strategy

    @property
    def conflict_resolution(self) -> str:
        return self._conflict or self.runtime.sync.conflict_resolution

    # --- consistency ---------------------------------------------------------------

    def written(self) -> list[Position]:
        """The latest position this manager wrote, per partition."""
        return [Position(t, p, o) for (t, p), o in sorted(self._written.items())]

    def observe(self, position: Position | str) -> None:
        """Make this session depend on ``position`` (a position, its token, or another
        session's token): later ``causal`` reads reflect it."""
        self.session.observe(position)

    def session_token(self) -> str:
        """What this session has seen and written, for another process or the API."""
        self.session.observe(self.written())
        return self.session.token()

    def _record(self, position: Position) -> Position:
        key = (position.topic, position.partition)
        self._written[key] = max(position.offset, self._written.get(key, -1))
        self.runtime.record([position])
        return position

    async def wait_for(self, positions: Iterable[Position | str]) -> None:
        """Wait until the read model has applied ``positions`` (or their tokens)."""
        parsed = [p if isinstance(p, Position) else Position.parse(p) for p in positions]
        await self.runtime.wait_for(parsed)

    def _need(self, consistency: Consistency | None, position: Position | str | None) -> ReadNeed:
        rt = self.runtime
        return rt.sync.need(
            consistency or self.strategy,
            process_writes=[*self.written(), *rt.written()],
            own_writes=self.written(),
            session=self.session,
            position=position,
        )

    # --- pipeline and task state ---------------------------------------------------

    @timed_async("state_manager")
    async def get_pipeline_state(
        self,
        execution_id: str,
        consistency: Consistency | None = None,
        position: Position | str | None = None,
    ) -> ExecutionState:
        """The execution's state (``state.status``, ``state.tasks``...); ``StateNotFound``
        if the read model has no such execution."""
        state = await self._state(execution_id, consistency, position)
        return await open_state(state, self.runtime.data_keys)

    async def _state(
        self,
        execution_id: str,
        consistency: Consistency | None,
        position: Position | str | None,
    ) -> ExecutionState:
        """The state as the fold holds it (sealed and blob markers unopened)."""
        need = self._need(consistency, position)
        rt = self.runtime
        if rt.state_reader is not rt.read_model:  # backend redis: Redis is the shared level
            await rt.wait_for(need.positions)
            found = await rt.state_reader.load_execution(execution_id)
            if found is None:
                raise StateNotFound("execution", execution_id)
            return found
        entry = await rt.cache.read(EXECUTION, execution_id, need)
        if entry is None:
            raise StateNotFound("execution", execution_id)
        state: ExecutionState = entry.value
        return state

    @timed_async("state_manager")
    async def get_task_state(
        self,
        execution_id: str,
        task_id: str,
        consistency: Consistency | None = None,
        position: Position | str | None = None,
    ) -> TaskState:
        """One task's state, its claim-checked inputs/outputs fetched and verified, sealed
        ones decrypted (``UserDataErased`` if the execution's data was erased)."""
        state = await self._state(execution_id, consistency, position)
        task = state.tasks.get(task_id)
        if task is None:
            raise StateNotFound("task", f"{task_id} of execution {execution_id}")
        rt = self.runtime
        inputs, outputs = await asyncio.gather(
            rt.open_value(task.inputs, execution_id), rt.open_value(task.outputs, execution_id)
        )
        return replace(task, inputs=inputs, outputs=outputs)

    # --- shared state --------------------------------------------------------------

    @timed_async("state_manager")
    async def get_variable(
        self,
        namespace: str,
        name: str,
        consistency: Consistency | None = None,
        position: Position | str | None = None,
    ) -> SharedVariable | None:
        """The variable (value fetched if claim-checked, decrypted if sealed), ``None`` if
        absent or deleted."""
        ns = await self._namespace(namespace, consistency, position)
        found = ns.variables.get(name)
        var = None if found is None or found.deleted else found
        self._versions[(namespace, name)] = 0 if var is None else var.version
        if var is None:
            return var
        scope = namespace_scope(namespace)
        return replace(var, value=await self.runtime.open_value(var.value, scope))

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
        if self.conflict_resolution == "reject" and expected_version is None:
            expected_version = self._versions.get((namespace, name), 0)
        task = current_task()
        position = await self.runtime.shared.execute(
            SetVariable(
                namespace,
                name,
                value,
                type=type,
                expected_version=expected_version,
                immutable=immutable,
                updated_by=updated_by or (task.task_id if task else None),
            )
        )
        self._versions.pop((namespace, name), None)
        if expected_version is not None:
            self._versions[(namespace, name)] = expected_version + 1
        return await self._wrote(namespace, position)

    async def _wrote(self, namespace: str, position: Position) -> Position:
        self._record(position)
        await self.runtime.cache.wrote(NAMESPACE, namespace, position)
        return position

    async def _namespace(
        self, namespace: str, consistency: Consistency | None, position: Position | str | None
    ) -> NamespaceState:
        entry = await self.runtime.cache.read(
            NAMESPACE, namespace, self._need(consistency, position)
        )
        assert entry is not None  # a namespace always loads (maybe empty)
        ns: NamespaceState = entry.value
        return ns

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
        position = await self.runtime.shared.execute(
            DeleteVariable(
                namespace,
                name,
                expected_version=expected_version,
                deleted_by=deleted_by or (task.task_id if task else None),
            )
        )
        self._versions.pop((namespace, name), None)
        return await self._wrote(namespace, position)

    @timed_async("state_manager")
    async def get_shared_state(
        self,
        namespace: str,
        consistency: Consistency | None = None,
        position: Position | str | None = None,
    ) -> SharedStateView:
        """The namespace's live variables and locks, as the seed's ``shared_state``."""
        ns = await self._namespace(namespace, consistency, position)
        locks = await list_locks(prefix=f"{namespace}/", store=self.runtime.leases)
        live = {k: v for k, v in ns.variables.items() if not v.deleted}
        return SharedStateView(namespace=namespace, variables=live, locks=locks)
