"""JSON text for ``jsonb`` columns: what PostgreSQL's ``jsonb`` can hold, encoded fast.

Why apart: every row builder of ``projections.readmodel`` calls it a few times per
event (a hot path), and it is the one place that knows what ``jsonb`` refuses. orjson
writes the text where it gives the same value (``events.fast_dumps``); the stdlib's C
encoder the rest (non-finite floats, tuples, ...).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from orchestrator.events import fast_dumps

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_ENCODE = _ENCODER.encode


def _one_shot_encoder() -> Any:
    """What ``_ENCODE`` runs, made once instead of per call (a hot path: a few calls per
    event): the C encoder with the same settings, without the circular-reference
    markers (JSON values decoded from text cannot hold cycles)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    basestring = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or basestring is None:
        return None
    encode = make(None, _ENCODER.default, basestring, None, ":", ",", False, False, False)
    return lambda value: "".join(encode(value, 0))


_ENCODE = _one_shot_encoder() or _ENCODE
_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dumps(value: Any) -> str | None:
    """JSON text for a ``jsonb`` column; ``None`` stays SQL ``NULL``.

    PostgreSQL's ``jsonb`` refuses NaN, Infinity and the NUL character, which user data
    (JSON from Python) may hold; one such value must not wedge the processor, so they
    are stored as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` and as U+FFFD.
    """
    if value is None:
        return None
    fast = fast_dumps(value)
    if fast is not None:
        text = fast.decode()
    else:
        try:
            text = _ENCODE(value)
        except ValueError:
            text = _ENCODE(_finite(value))
    if "\\u0000" in text:
        text = _NUL.sub(r"\1\\ufffd", text)
    return text


def loads(text: str | None) -> Any:
    """The inverse of :func:`dumps`."""
    return None if text is None else json.loads(text)
