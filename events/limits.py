"""Input limits: how big a record, a user-data value and an identifier may be.

Every reader of the log (processor, snapshotter, restore, replay, check) decodes with
the same codec and limits, so a record over a limit gets the same verdict everywhere:
it is not an event (``DecodeError`` naming the limit), never an exception further on
and never an allocation of whatever size the record claims. The checks run before
anything large is allocated: the record's length before decoding, a compressed payload's
declared content size before decompressing it.

Identifiers (execution, pipeline, task, checkpoint ids, namespaces, variable names) end
up as PostgreSQL ``text`` and index keys and as Kafka keys: they must be non-empty UTF-8
without control characters (PostgreSQL cannot store NUL) and at most
``max_identifier_bytes`` long (an index row holds about 2.7 KB).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.events.errors import OrchestratorStateError
from orchestrator.events.userdata import UserData, declared_size

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

_ID, _IDS, _TEXT, _DATA, _RECORD, _RECORDS = range(6)
_PLANS: dict[type, tuple[tuple[str, int], ...]] = {}


def _plan(cls: type) -> tuple[tuple[str, int], ...]:
    """What to check in each field of ``cls``, from its annotations (compiled once)."""
    plan = _PLANS.get(cls)
    if plan is not None:
        return plan
    out: list[tuple[str, int]] = []
    has_namespace = any(f.name == "namespace" for f in dataclasses.fields(cls))
    for f in dataclasses.fields(cls):
        kind = str(f.type)
        identifier = f.name in _IDENTIFIER_FIELDS or (f.name == "name" and has_namespace)
        if "UserData" in kind:
            out.append((f.name, _DATA))
        elif kind.startswith("tuple[str"):
            out.append((f.name, _IDS if identifier else _TEXT))
        elif kind.startswith("tuple["):
            out.append((f.name, _RECORDS))
        elif kind.startswith("str"):
            out.append((f.name, _ID if identifier else _TEXT))
        elif kind[:1].isupper() and kind not in ("Payload",):
            out.append((f.name, _RECORD))
        elif kind == "Payload":
            out.append((f.name, _RECORD))
    plan = _PLANS[cls] = tuple(out)
    return plan


def event_problem(envelope: Any, limits: InputLimits = DEFAULT_LIMITS) -> str | None:
    """Why a decoded event may not be read any further, or ``None``.

    Identifiers must pass :func:`identifier_problem`; no text may hold a NUL
    (PostgreSQL cannot store it); compressed user data that declares a decompressed
    size must declare one within ``limits.max_user_data_bytes``. User data that is
    corrupt otherwise is the fold's to refuse (``REJECTED``), not the codec's."""
    if _ok(envelope, limits, limits.max_identifier_bytes // 4):
        return None
    return _check(envelope, "", limits)


# A hot path (every decode): per class, a compiled yes/no check of the common case.
# It says "fine" only where ``_check`` finds no problem; anything else (an unusual
# value, a compressed or claim-checked payload over a limit) goes to ``_check``,
# which names the problem.
_FAST: dict[type, Callable[[Any, InputLimits, int], bool]] = {}


def _ok(record: Any, limits: InputLimits, quick: int) -> bool:
    fast = _FAST.get(record.__class__)
    if fast is None:
        if not dataclasses.is_dataclass(record) or isinstance(record, type):
            return True
        fast = _FAST[record.__class__] = _compile_fast(record.__class__)
    return fast(record, limits, quick)


_FAST_LINES = {
    _ID: ["if not (v.__class__ is str and 0 < len(v) <= quick and v.isprintable()): return False"],
    _TEXT: [
        "if v.__class__ is str:",
        "    if '\\x00' in v: return False",
        "elif v.__class__ is not tuple or any(",
        "    t.__class__ is not str or '\\x00' in t for t in v): return False",
    ],
    _IDS: [
        "for t in v:",
        "    if not (t.__class__ is str and 0 < len(t) <= quick and t.isprintable()): return False",
    ],
    _DATA: [
        "if v.__class__ is _UserData and (v.ref is not None or v.encoding == 'json_zstd')"
        " and _data_problem(v, '', limits) is not None: return False",
    ],
    _RECORD: ["if not _ok(v, limits, quick): return False"],
    _RECORDS: [
        "for t in v:",
        "    if not _ok(t, limits, quick): return False",
    ],
}


def _compile_fast(cls: type) -> Callable[[Any, InputLimits, int], bool]:
    """``_check(record) is None`` for the common values of ``cls``'s fields, compiled."""
    lines = ["def ok(r, limits, quick):"]
    for name, kind in _plan(cls):
        lines += [f"    v = r.{name}", "    if v is not None:"]
        lines += [f"        {line}" for line in _FAST_LINES[kind]]
    lines.append("    return True")
    env: dict[str, Any] = {"_ok": _ok, "_UserData": UserData, "_data_problem": _data_problem}
    exec("\n".join(lines), env)  # source built from field names only
    fast: Callable[[Any, InputLimits, int], bool] = env["ok"]
    return fast


def _check(record: Any, path: str, limits: InputLimits) -> str | None:
    plan = _PLANS.get(record.__class__)
    if plan is None:
        if not dataclasses.is_dataclass(record) or isinstance(record, type):
            return None
        plan = _plan(record.__class__)
    max_id = limits.max_identifier_bytes
    quick = max_id // 4  # a str this short is within max_id bytes whatever it holds
    for name, kind in plan:
        value = getattr(record, name)
        if value is None:
            continue
        if kind == _ID:
            if value.__class__ is str and 0 < len(value) <= quick and value.isprintable():
                continue  # the common case, without the full check
            problem = identifier_problem(value, max_id)
            if problem is not None:
                return f"{path}{name}: identifier {problem}"
        elif kind == _TEXT:
            texts = value if isinstance(value, tuple) else (value,)
            if any("\x00" in t for t in texts if isinstance(t, str)):
                return f"{path}{name}: contains a NUL character"
        elif kind == _IDS:
            for one in value:
                problem = identifier_problem(one, max_id)
                if problem is not None:
                    return f"{path}{name}: identifier {problem}"
        elif kind == _DATA:
            problem = _data_problem(value, f"{path}{name}", limits)
            if problem is not None:
                return problem
        elif kind == _RECORD:
            problem = _check(value, f"{path}{name}.", limits)
            if problem is not None:
                return problem
        else:
            for index, item in enumerate(value):
                problem = _check(item, f"{path}{name}[{index}].", limits)
                if problem is not None:
                    return problem
    return None


def _data_problem(value: Any, where: str, limits: InputLimits) -> str | None:
    if value.__class__ is not UserData:
        return None
    if value.encoding == "json_zstd" and value.inline is not None:
        try:
            size = declared_size(value.inline)
        except OrchestratorStateError:
            size = 0  # corrupt, or no declared size: the fold refuses it (a verdict)
        if size > limits.max_user_data_bytes:
            return (
                f"{where}: user data of {size} bytes decompressed is over the limit "
                f"{limits.max_user_data_bytes} (limits.max_user_data_bytes)"
            )
    ref = value.ref
    if ref is not None and ("\x00" in ref.uri or "\x00" in ref.sha256):
        return f"{where}.ref: contains a NUL character"
    return None
