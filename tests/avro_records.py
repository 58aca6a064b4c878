"""An event dataclass as the plain value fastavro reads and writes (records as dicts,
arrays as lists), for the unit tests of the codec and the schemas."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any


def avro_value(value: Any) -> Any:
    """``value`` with every dataclass a dict of its fields and every tuple a list."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: avro_value(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [avro_value(item) for item in value]
    return value
