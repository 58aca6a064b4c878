"""What is cached: execution states (by execution id) and shared-state namespaces.

Each kind says how its value becomes bytes for the shared levels and back. Execution
states use the snapshot's Avro state schema (the fingerprint travels with the bytes);
namespaces are JSON (variable values are JSON user data already).
"""

from __future__ import annotations

import datetime as dt
import json
import struct
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from orchestrator.events.state import ExecutionState, NamespaceState, SharedVariable
from orchestrator.snapshots import AvroStateConverter

T = TypeVar("T")


class Kind(Protocol, Generic[T]):
    """A cached kind: its name (part of every key) and its body codec."""

    @property
    def name(self) -> str: ...

    def encode(self, value: T) -> bytes: ...

    def decode(self, body: bytes) -> T: ...


_FP = struct.Struct(">q")


@dataclass(frozen=True, slots=True)
class ExecutionKind:
    """Execution states: the fingerprint of the state schema, then the Avro body."""

    name: str = "execution"
    converter: AvroStateConverter = field(default_factory=AvroStateConverter)

    def encode(self, value: ExecutionState) -> bytes:
        return _FP.pack(self.converter.fingerprint) + self.converter.to_bytes(value)

    def decode(self, body: bytes) -> ExecutionState:
        (fingerprint,) = _FP.unpack_from(body)
        return self.converter.from_bytes(body[_FP.size :], fingerprint, "cache entry")


def _time(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _row(v: SharedVariable) -> list[Any]:
    at = _time(v.updated_at)
    return [v.name, v.type, v.value, v.immutable, v.updated_by, at, v.version, v.deleted]


@dataclass(frozen=True, slots=True)
class NamespaceKind:
    """A namespace's variables (deleted ones included: they keep their version)."""

    name: str = "namespace"

    def encode(self, value: NamespaceState) -> bytes:
        variables = [_row(v) for v in value.variables.values()]
        return json.dumps({"n": value.namespace, "v": variables}, separators=(",", ":")).encode()

    def decode(self, body: bytes) -> NamespaceState:
        data: dict[str, Any] = json.loads(body)
        variables = {}
        for name, type_, value, immutable, by, at, version, deleted in data["v"]:
            variables[name] = SharedVariable(
                name=name,
                type=type_,
                value=value,
                immutable=immutable,
                updated_by=by,
                updated_at=None if at is None else dt.datetime.fromisoformat(at),
                version=version,
                deleted=deleted,
            )
        return NamespaceState(namespace=data["n"], variables=variables)


def namespace_version(state: NamespaceState) -> int:
    """Grows with every applied set or delete (a deleted variable keeps its version)."""
    return sum(v.version for v in state.variables.values())


EXECUTION = ExecutionKind()
NAMESPACE = NamespaceKind()
