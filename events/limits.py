"""Input limits: how big a record, a user-data value and an identifier may be.

Every reader of the log (processor, snapshotter, restore, replay, check) decodes with
the same codec and limits, so a record over a limit gets the same verdict everywhere:
it is not an event (``DecodeError`` naming the limit), never an exception further on
and never an allocation of whatever size the record claims. The checks run before
anything large is allocated: the record's length before decoding, a zstd frame's
declared content size before decompressing it.

Identifiers (execution, pipeline, task, checkpoint ids, namespaces, variable names) end
up as PostgreSQL ``text`` and index keys and as Kafka keys: they must be non-empty UTF-8
without control characters (PostgreSQL cannot store NUL) and at most
``max_identifier_bytes`` long (an index row holds about 2.7 KB).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.events.errors import OrchestratorStateError
from orchestrator.events.userdata import UserData, zstd_content_size

DEFAULT_MAX_RECORD_BYTES = 1024 * 1024
"""Kafka's own default ``message.max.bytes`` (about 1 MiB)."""
DEFAULT_MAX_USER_DATA_BYTES = 16 * 1024 * 1024
"""Decoded (decompressed) bytes of one user-data value."""
DEFAULT_MAX_IDENTIFIER_BYTES = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class InputLimits:
    """The limits one codec enforces on what it reads (and writes)."""

    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    max_user_data_bytes: int = DEFAULT_MAX_USER_DATA_BYTES
    max_identifier_bytes: int = DEFAULT_MAX_IDENTIFIER_BYTES

    def __post_init__(self) -> None:
        for name in ("max_record_bytes", "max_user_data_bytes", "max_identifier_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"limits.{name} must be >= 1, got {getattr(self, name)!r}")


DEFAULT_LIMITS = InputLimits()


def identifier_problem(value: object, max_bytes: int = DEFAULT_MAX_IDENTIFIER_BYTES) -> str | None:
    """Why ``value`` cannot be an identifier, or ``None`` when it can."""
    if not isinstance(value, str):
        return f"not a string ({type(value).__name__})"
    if not value:
        return "empty"
    if len(value) > max_bytes:  # characters <= bytes: a cheap first check
        return f"{len(value)} characters, over the limit of {max_bytes} bytes"
    if not value.isprintable() and any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "contains a control character (NUL, newline, ...)"
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        return "not valid UTF-8 (a lone surrogate)"
    if size > max_bytes:
        return f"{size} bytes, over the limit of {max_bytes}"
    return None


# --- checking one decoded event --------------------------------------------------------

_IDENTIFIER_FIELDS = frozenset(
    {
        "execution_id",
        "pipeline_id",
        "event_id",
        "task_id",
        "depends_on",
        "checkpoint_id",
        "namespace",
        "forked_from",
        "root_execution_id",
    }
)
"""Fields (of the envelope and any payload record) that become keys or id columns;
``name`` too where it sits beside a ``namespace`` (a shared variable's name)."""

_FIELDS: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def event_problem(envelope: Any, limits: InputLimits = DEFAULT_LIMITS) -> str | None:
    """Why a decoded event may not be read any further, or ``None``.

    Identifiers must pass :func:`identifier_problem`; no text may hold a NUL
    (PostgreSQL cannot store it); compressed user data that declares a decompressed
    size must declare one within ``limits.max_user_data_bytes``. User data that is
    corrupt otherwise is the fold's to refuse (``REJECTED``), not the codec's."""
    return _walk(envelope, "", limits)


def _walk(value: Any, path: str, limits: InputLimits) -> str | None:
    if value is None or value.__class__ in (int, float, bool, datetime):
        return None
    if value.__class__ is str:
        return f"{path}: contains a NUL character" if "\x00" in value else None
    if value.__class__ is UserData:
        if value.inline is not None and value.encoding == "json_zstd":
            try:
                size = zstd_content_size(value.inline)
            except OrchestratorStateError:
                size = 0  # corrupt, or no declared size: the fold refuses it (a verdict)
            if size > limits.max_user_data_bytes:
                return (
                    f"{path}: user data of {size} bytes decompressed is over the limit "
                    f"{limits.max_user_data_bytes} (limits.max_user_data_bytes)"
                )
        return None if value.ref is None else _walk(value.ref, f"{path}.ref", limits)
    if isinstance(value, tuple):
        for index, item in enumerate(value):
            problem = _walk(item, f"{path}[{index}]", limits)
            if problem is not None:
                return problem
        return None
    if dataclasses.is_dataclass(value):
        for name in _field_names(value.__class__):
            item = getattr(value, name)
            where = f"{path}.{name}" if path else name
            if item is not None and (
                name in _IDENTIFIER_FIELDS or (name == "name" and hasattr(value, "namespace"))
            ):
                items = item if isinstance(item, tuple) else (item,)
                for one in items:
                    problem = identifier_problem(one, limits.max_identifier_bytes)
                    if problem is not None:
                        return f"{where}: identifier {problem}"
                continue
            problem = _walk(item, where, limits)
            if problem is not None:
                return problem
    return None
