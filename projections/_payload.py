"""Event payloads as JSON for the archive: one converter per class, compiled once.

The archive stores every event's payload as ``jsonb`` with user data decoded (a
claim-checked value as its marker). The processor converts every event it reads,
so instead of walking each payload generically (``dataclasses.fields``, ``getattr``
and an ``isinstance`` chain per value) each class gets its converter the first time
it is seen. The result is the same as the generic walk, which the converters are
chosen by: scalars as they are, user data decoded, sequences as lists, datetimes as
ISO text, dataclasses as objects of their fields, anything else as it is.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from orchestrator.events import (
    NOT_PLAIN,
    UserData,
    UserDataError,
    decode_user_data,
    is_delta,
    plain_json,
)

_SCALARS = (str, int, float, bool, type(None))
_SCALAR_CLASSES = frozenset(_SCALARS)
_CONVERTERS: dict[type, Callable[[Any], Any]] = {}
_loads = json.loads


def json_value(value: Any) -> Any:
    """``value`` as JSON-able data (see the module docstring)."""
    cls = value.__class__
    if cls in _SCALAR_CLASSES:
        return value
    converter = _CONVERTERS.get(cls)
    if converter is None:
        converter = _CONVERTERS[cls] = _converter(cls)
    return converter(value)


def _identity(value: Any) -> Any:
    return value


def _user_data(value: UserData) -> Any:
    parsed = plain_json(value)
    if parsed is not NOT_PLAIN:
        return parsed
    inline = value.inline
    if inline is not None and is_delta(inline):  # checkpoint data stored as a delta
        return {"$delta": {"bytes": len(inline)}}
    try:
        return decode_user_data(value)
    except UserDataError as exc:
        return {"$undecodable": str(exc)}


def _sequence(value: Any) -> list[Any]:
    return [json_value(v) for v in value]


def _isoformat(value: datetime) -> str:
    return value.isoformat()


def _converter(cls: type) -> Callable[[Any], Any]:
    if issubclass(cls, _SCALARS):
        return _identity
    if issubclass(cls, UserData):
        return _user_data
    if issubclass(cls, tuple | list):
        return _sequence
    if issubclass(cls, datetime):
        return _isoformat
    if dataclasses.is_dataclass(cls):
        return _record_converter(cls)
    return _identity


def _record_converter(cls: type) -> Callable[[Any], Any]:
    """``lambda v: {"a": json_value(v.a), ...}`` for the fields of dataclass ``cls``."""
    names = [f.name for f in dataclasses.fields(cls)]
    if not all(name.isidentifier() for name in names):
        return lambda v: {name: json_value(getattr(v, name)) for name in names}
    body = ", ".join(f"{name!r}: _jv(v.{name})" for name in names)
    env: dict[str, Any] = {"_jv": json_value}
    exec(f"def convert(v):\n    return {{{body}}}", env)  # field names only
    converter: Callable[[Any], Any] = env["convert"]
    return converter
