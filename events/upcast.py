"""Upcasters: events written under an old schema release read as the current one.

Avro schema resolution already reads an event of an older release as the current
schema (a field added with a default gets its default). What it cannot do is change
meaning: a renamed field, a value in new units, a field split in two, user data that
changed shape. An upcaster does that. It is a function registered for
``(event_type, from_version)`` that takes the payload as release ``v<from_version>``
wrote it (a dict of Avro values: nested records as dicts, user data as
``{"encoding", "inline", "ref"}``) and returns it as release ``v<from_version + 1>``
has it::

    from orchestrator.events import upcaster

    @upcaster("TaskCompleted", from_version=1)
    def outputs_renamed(payload: dict) -> dict:
        payload["outputs"] = payload.pop("result", None)
        return payload

The codec (``events.codec``) applies the chain from the writer's release up to the
current schema whenever it decodes an older event, resolving with Avro between the
versions that have no upcaster. Every reader decodes through the codec, so the
processor, the snapshotter, restore, replay, ``check``, ``dlq replay`` and
``restore-backup`` all see the same upcasted event. Events written with the current
schema are not touched and cost nothing extra. An upcaster that raises, or returns a
payload that does not fit the next version, makes the event undecodable: it is
dead-lettered with the reason, never half-applied.

Register upcasters before the first event is read (at import of your application
module); a version is ``N`` for the release ``schemas/releases/vN``.

User state (checkpoint data, task outputs, variable values) is opaque JSON inside the
payload; :func:`user_state_upcaster` registers a function over that JSON value for
one user-data field, e.g. the checkpoint data of events written before a release::

    user_state_upcaster("CheckpointSaved", 1, "data", lambda d: {"v": 2, **d})

A claim-checked value cannot be reshaped on read (the fold does no I/O): such an event
does not decode and is dead-lettered, naming the field.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from orchestrator.events.errors import UserDataError
from orchestrator.events.userdata import UserData, decode_user_data, encode_user_data

UpcastFn = Callable[[dict[str, Any]], dict[str, Any]]


class UpcasterRegistry:
    """Upcasters by ``(event_type, from_version)``; one per pair."""

    def __init__(self) -> None:
        self._fns: dict[tuple[str, int], UpcastFn] = {}
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._fns)

    def __len__(self) -> int:
        return len(self._fns)

    def register(self, event_type: str, from_version: int | str, fn: UpcastFn) -> UpcastFn:
        """Register ``fn`` as the upcaster of ``event_type`` from ``from_version`` (``1`` or
        ``"v1"``) to the next version; a second one for the same pair is refused."""
        version = parse_version(from_version)
        if not event_type or not callable(fn):
            raise ValueError("an upcaster needs an event type and a callable")
        with self._lock:
            existing = self._fns.get((event_type, version))
            if existing is not None and existing is not fn:
                raise ValueError(
                    f"an upcaster of {event_type} from v{version} is already registered "
                    f"({getattr(existing, '__qualname__', existing)!s})"
                )
            self._fns[(event_type, version)] = fn
        return fn

    def unregister(self, event_type: str, from_version: int | str) -> None:
        """Remove an upcaster (tests; a missing one is not an error)."""
        with self._lock:
            self._fns.pop((event_type, parse_version(from_version)), None)

    def chain(
        self, event_type: str, from_version: int, to_version: int
    ) -> list[tuple[int, UpcastFn]]:
        """The upcasters that take ``event_type`` from ``from_version`` to ``to_version``,
        in version order (versions without one are left to Avro resolution)."""
        found = [
            (version, fn)
            for (kind, version), fn in self._fns.items()
            if kind == event_type and from_version <= version < to_version
        ]
        return sorted(found, key=lambda item: item[0])

    def registered(self) -> list[tuple[str, int]]:
        """Every ``(event_type, from_version)`` with an upcaster, sorted."""
        return sorted(self._fns)


def parse_version(value: int | str) -> int:
    """``1``, ``"1"`` or ``"v1"`` -> ``1``; anything else is a ``ValueError``."""
    text = str(value).strip().removeprefix("v")
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"schema version {value!r}: expected N or vN with N >= 1")
    return int(text)


@functools.cache
def default_upcasters() -> UpcasterRegistry:
    """The process's registry: every codec built without its own consults it."""
    return UpcasterRegistry()


def register_upcaster(event_type: str, from_version: int | str, fn: UpcastFn) -> UpcastFn:
    """Register ``fn`` in the process's registry (see the module docstring)."""
    return default_upcasters().register(event_type, from_version, fn)


def upcaster(event_type: str, from_version: int | str) -> Callable[[UpcastFn], UpcastFn]:
    """Decorator form of :func:`register_upcaster`."""

    def decorate(fn: UpcastFn) -> UpcastFn:
        return register_upcaster(event_type, from_version, fn)

    return decorate


def reshape_user_data(value: Any, fn: Callable[[Any], Any]) -> Any:
    """A user-data record (``{"encoding", "inline", "ref"}`` or ``None``) whose JSON value
    went through ``fn``, encoded again inline with the same encoding."""
    if value is None:
        return None
    data = UserData(encoding=value["encoding"], inline=value["inline"], ref=None)
    if value.get("ref") is not None or data.inline is None:
        raise UserDataError("a claim-checked user-data value cannot be reshaped on read")
    reshaped = encode_user_data(
        fn(decode_user_data(data)),
        compress_threshold=0 if data.encoding == "json_zstd" else 2**62,
        claim_check_threshold=2**62,
    )
    return {"encoding": reshaped.encoding, "inline": reshaped.inline, "ref": None}


def user_state_upcaster(
    event_type: str,
    from_version: int | str,
    field: str,
    fn: Callable[[Any], Any],
    *,
    registry: UpcasterRegistry | None = None,
) -> UpcastFn:
    """Register an upcaster that passes the JSON value of the user-data ``field`` of
    ``event_type`` (e.g. ``CheckpointSaved.data``) through ``fn``."""

    def upcast(payload: dict[str, Any]) -> dict[str, Any]:
        try:
            payload[field] = reshape_user_data(payload.get(field), fn)
        except UserDataError as exc:
            raise UserDataError(f"{event_type}.{field}: {exc}") from exc
        return payload

    upcast.__qualname__ = f"user_state_upcaster({event_type}.{field}, v{from_version})"
    target = default_upcasters() if registry is None else registry
    return target.register(event_type, from_version, upcast)
