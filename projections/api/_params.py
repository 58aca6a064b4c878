"""Query-parameter helpers: opaque cursors, position tokens, safe timestamps.

Every failure is a ``RequestValidationError`` naming the parameter, so a client gets
the same 422 shape from our checks as from FastAPI's own.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from fastapi.exceptions import RequestValidationError

from orchestrator.events import Position

_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1


def invalid(name: str, message: str, value: Any) -> RequestValidationError:
    """A 422 naming query parameter ``name``."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", name), "msg": message, "input": value}]
    )


def encode_cursor(created_at: datetime | None, execution_id: str) -> str:
    """An opaque token for the keyset ``(created_at, execution_id)`` of a page's last row."""
    raw = json.dumps([None if created_at is None else created_at.isoformat(), execution_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(token: str, name: str = "cursor") -> tuple[datetime | None, str]:
    """Read a token made by :func:`encode_cursor`; anything else is a 422."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created, execution_id = json.loads(raw)
        if not isinstance(execution_id, str) or "\x00" in execution_id:
            raise ValueError("bad execution id")
        when = None if created is None else datetime.fromisoformat(created)
        if when is not None:
            if when.tzinfo is None:
                raise ValueError("naive timestamp")
            when = when.astimezone(UTC)
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise invalid(name, "malformed cursor: pass back a next_cursor unchanged", token) from exc
    return when, execution_id


def parse_position(token: str, name: str = "position") -> Position:
    """A ``topic:partition:offset`` token within PostgreSQL's integer ranges, or a 422."""
    try:
        position = Position.parse(token)
    except ValueError as exc:
        raise invalid(name, str(exc), token) from exc
    if "\x00" in position.topic:
        raise invalid(name, "topic contains a NUL character", token)
    if not 0 <= position.partition <= _INT32_MAX:
        raise invalid(name, f"partition out of range 0..{_INT32_MAX}", token)
    if not 0 <= position.offset <= _INT64_MAX:
        raise invalid(name, f"offset out of range 0..{_INT64_MAX}", token)
    return position


def utc(value: datetime | None, name: str) -> datetime | None:
    """``value`` in UTC (a naive time is taken as UTC); one that cannot be is a 422."""
    if value is None:
        return None
    try:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise invalid(name, "timestamp out of range", value.isoformat()) from exc
