"""Frozen slots dataclasses built without their ``__init__``, for the read path's hot spots.

A frozen dataclass's ``__init__`` assigns each field through ``object.__setattr__``
(its ``__setattr__`` refuses): about twice the cost of setting the slots directly.
The processor builds several such objects per record (its position, the record, the
decoded record, the fold's verdict), so :func:`constructor` compiles, per class, a
function that sets the slots itself. The result is the same object ``__init__`` would
build; a class where that does not hold keeps its ``__init__``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


def plain_slot_fields(cls: type) -> list[str] | None:
    """The field names of ``cls`` if building it slot by slot is what its ``__init__``
    does (a slots dataclass without ``__post_init__``, every field an init field and a
    slot); ``None`` otherwise."""
    if not dataclasses.is_dataclass(cls):
        return None
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields]
    slots = getattr(cls, "__slots__", None)
    if (
        hasattr(cls, "__post_init__")
        or any(not f.init for f in fields)
        or slots is None
        or set(slots) != set(names)
    ):
        return None
    return names


def slot_builder(
    cls: type, signature: str, sources: list[str], env: dict[str, Any]
) -> Callable[..., Any]:
    """Compile ``def f(<signature>)`` that builds ``cls`` slot by slot, field ``i`` (of
    :func:`plain_slot_fields`, which must not be ``None``) from the expression
    ``sources[i]``; ``env``: the names those expressions use."""
    names = plain_slot_fields(cls)
    assert names is not None
    env = {**env, "_new": object.__new__, "_cls": cls}
    lines = [f"def f({signature}):", "    n = _new(_cls)"]
    for i, (name, source) in enumerate(zip(names, sources, strict=True)):
        env[f"_set{i}"] = getattr(cls, name).__set__  # the slot itself, past the frozen guard
        lines.append(f"    _set{i}(n, {source})")
    lines.append("    return n")
    exec("\n".join(lines), env)  # source built from field names only
    built: Callable[..., Any] = env["f"]
    return built


def constructor(cls: type) -> Callable[..., Any]:
    """``cls(*args)`` with positional arguments (fields with a plain default may be left
    out), compiled to set the slots directly; ``cls`` itself where that would differ."""
    if plain_slot_fields(cls) is None:
        return cls
    env: dict[str, Any] = {}
    params = []
    for i, f in enumerate(dataclasses.fields(cls)):
        if f.default_factory is not dataclasses.MISSING:
            return cls  # a fresh default per call: leave it to __init__
        if f.default is dataclasses.MISSING:
            params.append(f"_v{i}")
        else:
            env[f"_d{i}"] = f.default
            params.append(f"_v{i}=_d{i}")
    return slot_builder(cls, ", ".join(params), [p.split("=")[0] for p in params], env)
