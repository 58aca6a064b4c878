"""Shared state: namespaces of typed variables, written with compare-and-set.

The seed's ``shared_state`` block: each variable has a ``type``, a ``value``,
``updated_by``/``updated_at`` and may be ``immutable``. Writes are decided against the
namespace's folded state (:func:`decide_shared`, pure, checked with the fold's own
``step_shared``): a write to an immutable variable (``ImmutableVariable``) or with a
stale ``expected_version`` (``StaleExpectedVersion``) is refused and writes nothing.
``conflict_resolution: last_write_wins`` is a set without ``expected_version``.

Why a lease per namespace: a compare-and-set is only as good as the state it compares
with. :class:`SharedStateWriter` takes the lease ``namespace:<ns>`` for the duration of
one write, waits until the read model has applied everything already in the
namespace's partition (so it sees the previous holder's write), decides, appends and
releases. Should a holder stall past its lease and write late anyway, the fold's
version check drops its event (a second ``version n``) instead of applying it twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import KW_ONLY, dataclass, field, replace
from typing import Any

from orchestrator.commands._metrics import record_commands
from orchestrator.commands.errors import (
    CommandError,
    ImmutableVariable,
    LeaseLost,
    LockTimeout,
    StaleExpectedVersion,
)
from orchestrator.commands.leases import unique_holder
from orchestrator.commands.ports import (
    UserDataSettings,
    Wiring,
    encode_value,
    take_lease,
)
from orchestrator.events import (
    Envelope,
    NamespaceState,
    Outcome,
    Payload,
    Position,
    SharedVariable,
    SharedVariableDeleted,
    SharedVariableSet,
    UserData,
    encode_user_data,
    error_fields,
    namespace_scope,
    step_shared,
)

log = logging.getLogger(__name__)


@error_fields("shared variable {namespace}/{name} does not exist")
class VariableNotFound(CommandError):
    """A delete (or an expected version) of a variable that does not exist."""

    namespace: str
    name: str


@error_fields(
    "shared variable {namespace}/{name} is of type {declared!r}, cannot hold a {value_type!r}"
)
class VariableTypeMismatch(CommandError):
    """A value that does not fit the variable's declared type."""

    namespace: str
    name: str
    declared: str
    value_type: str


@dataclass(frozen=True, slots=True)
class SetVariable:
    """Set ``namespace/name``; ``expected_version`` (0: must not exist yet) makes it a CAS."""

    namespace: str
    name: str
    value: Any
    _: KW_ONLY
    type: str | None = None
    expected_version: int | None = None
    immutable: bool = False
    updated_by: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteVariable:
    """Delete ``namespace/name`` (its version is kept, so a later set continues it)."""

    namespace: str
    name: str
    _: KW_ONLY
    expected_version: int | None = None
    deleted_by: str | None = None


SharedCommand = SetVariable | DeleteVariable

# The seed's type names and the JSON values each accepts; other names are not checked.
_ACCEPTS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list, tuple),
    "dict": (dict,),
}


def type_of(value: Any) -> str:
    """The type name of a plain JSON value (``null`` for ``None``)."""
    if value is None:
        return "null"
    for name in ("bool", "int", "float", "str", "list", "dict"):
        if isinstance(value, _ACCEPTS[name]):
            return name
    return type(value).__name__


def _fits(declared: str, value: Any) -> bool:
    if isinstance(value, UserData) or declared not in _ACCEPTS or value is None:
        return True
    if isinstance(value, bool) and declared in ("int", "float"):
        return False
    return isinstance(value, _ACCEPTS[declared])


def check_type(state: NamespaceState | None, command: SetVariable) -> str:
    """The type the variable will have; ``VariableTypeMismatch`` if the value does not
    fit it, or if the set would change the type of a live variable."""
    current = None if state is None else state.variables.get(command.name)
    live = current if current is not None and not current.deleted else None
    declared = command.type or (live.type if live is not None else type_of(command.value))
    if live is not None and declared != live.type:
        raise VariableTypeMismatch(command.namespace, command.name, live.type, declared)
    if not _fits(declared, command.value):
        raise VariableTypeMismatch(
            command.namespace, command.name, declared, type_of(command.value)
        )
    return declared


def decide_shared(state: NamespaceState | None, command: SharedCommand) -> list[Payload]:
    """The event ``command`` produces in ``state``, or the error that refuses it."""
    ns, name = command.namespace, command.name
    current: SharedVariable | None = None if state is None else state.variables.get(name)
    actual = 0 if current is None else current.version
    if command.expected_version is not None and command.expected_version != actual:
        raise StaleExpectedVersion(ns, name, command.expected_version, actual)
    if current is not None and current.immutable and not current.deleted:
        raise ImmutableVariable(ns, name)
    payload: Payload
    if isinstance(command, SetVariable):
        value = command.value
        payload = SharedVariableSet(
            namespace=ns,
            name=name,
            type=check_type(state, command),
            value=value if isinstance(value, UserData) else encode_user_data(value),
            immutable=command.immutable,
            updated_by=command.updated_by,
            version=actual + 1,
        )
    else:
        if current is None or current.deleted:
            raise VariableNotFound(ns, name)
        payload = SharedVariableDeleted(
            namespace=ns, name=name, deleted_by=command.deleted_by, version=actual + 1
        )
    result = step_shared(state, _envelope(payload, epoch=0, producer=""))
    if result.outcome is not Outcome.APPLIED:  # the checks above are the fold's
        raise AssertionError(f"fold refused a decided shared event: {result.reason}")
    return [payload]


def _envelope(payload: Payload, *, epoch: int, producer: str) -> Envelope:
    return Envelope(
        execution_id=None,
        pipeline_id=None,
        sequence=None,
        epoch=epoch,
        payload=payload,
        producer=producer,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedSettings:
    """``lock_ttl``: the namespace lease's ttl; ``lock_timeout``: how long a write waits
    for it; ``read_model_timeout``: how long it waits for the previous write to apply."""

    lock_ttl: float = 10.0
    lock_timeout: float = 10.0
    read_model_timeout: float = 30.0
    user_data: UserDataSettings = field(default_factory=UserDataSettings)


@dataclass(eq=False, repr=False, kw_only=True)
class SharedStateWriter(Wiring):
    """Reads and compare-and-set writes of shared variables, one namespace lease at a time.

    ``topic`` is the shared-state topic (``TopicsConfig.shared.name``). A command's
    ``updated_by``/``deleted_by`` defaults to ``node_id``.
    """

    topic: str
    settings: SharedSettings = field(default_factory=SharedSettings)
    last_position: Position | None = field(default=None, init=False)
    _partitions: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _local: dict[str, asyncio.Lock] = field(default_factory=dict, init=False, repr=False)

    async def get(self, namespace: str, name: str) -> SharedVariable | None:
        """The variable as the read model holds it (``None`` if absent or deleted)."""
        var = (await self.read_model.load_namespace(namespace)).variables.get(name)
        return None if var is None or var.deleted else var

    async def execute(self, command: SharedCommand) -> Position:
        """Decide and append one shared-state command under the namespace's lease."""
        started = time.perf_counter()
        try:
            position = await self._execute(command)
        except BaseException:
            record_commands([[command]], time.perf_counter() - started, ok=False)
            raise
        record_commands([[command]], time.perf_counter() - started, ok=True)
        return position

    async def _execute(self, command: SharedCommand) -> Position:
        ns = command.namespace
        if isinstance(command, SetVariable) and command.updated_by is None:
            command = replace(command, updated_by=self.node_id)
        elif isinstance(command, DeleteVariable) and command.deleted_by is None:
            command = replace(command, deleted_by=self.node_id)
        async with self._local.setdefault(ns, asyncio.Lock()):
            name, holder = f"namespace:{ns}", unique_holder(self.node_id)
            s = self.settings
            lease, valid_until = await take_lease(
                self.leases, name, holder, s.lock_ttl, wait=s.lock_timeout
            )
            if lease is None:
                raise LockTimeout(name, holder, s.lock_timeout)
            try:
                await self._catch_up(ns)
                state = await self.read_model.load_namespace(ns)
                if isinstance(command, SetVariable) and not isinstance(command.value, UserData):
                    # Typed (and type-checked) before the value becomes opaque bytes.
                    declared = check_type(state, command)
                    encoded = await encode_value(
                        command.value, self.blob_store, s.user_data, scope=namespace_scope(ns)
                    )
                    command = replace(command, value=encoded, type=declared)
                [payload] = decide_shared(state, command)
                if asyncio.get_running_loop().time() >= valid_until:
                    raise LeaseLost(name, holder, lease.epoch)
                envelope = _envelope(payload, epoch=lease.epoch, producer=self.node_id)
                [position] = await self.log.append_batch([envelope], self.topic)
            finally:
                await self.leases.release(lease)
        self._partitions[ns] = position.partition
        self.last_position = position
        return position

    async def _catch_up(self, namespace: str) -> None:
        """Wait until the read model applied what the namespace's partition holds."""
        ends = await self.log.end_offsets(self.topic)
        known = self._partitions.get(namespace)
        for partition in [known] if known is not None else sorted(ends):
            end = ends.get(partition, 0)
            if end > 0:
                position = Position(self.topic, partition, end - 1)
                await self.read_model.wait_for(position, self.settings.read_model_timeout)
