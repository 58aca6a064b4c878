"""Options that are refused, and options accepted with a warning, each with the reason.

A user copying the seed's YAML must learn what each option does here. Options our
design makes unnecessary are accepted with a warning that says why; options not
supported are refused. The rules are data so ``config check`` can list them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.config._yaml import Location


@dataclass(frozen=True, slots=True)
class Rule:
    """``path`` (``*`` matches one key) whose value satisfies ``when`` gets ``message``."""

    path: Location
    message: str
    refuse: bool
    when: Callable[[Any], bool] = lambda value: value is not None


UNNECESSARY = "accepted, but unnecessary in this design: "
UNSUPPORTED = "not supported: "

RULES: tuple[Rule, ...] = (
    Rule(
        ("task_state",),
        UNNECESSARY + "a task state is written by the pipeline runtime, not configured; "
        "this document is validated against the task state schema only",
        refuse=False,
    ),
    Rule(
        ("shared_state", "locks"),
        UNNECESSARY + "locks are taken at run time with DistributedLock and listed by "
        "StateManager; locks in a file are validated, not created",
        refuse=False,
        when=lambda v: bool(v),
    ),
    Rule(
        ("state_management", "config", "format"),
        UNSUPPORTED + "format 'pickle' would run arbitrary code when a snapshot is read "
        "back; use 'json' or 'msgpack'",
        refuse=True,
        when=lambda v: v == "pickle",
    ),
    Rule(
        ("distributed", "coordination", "backend"),
        UNSUPPORTED + "coordination runs on PostgreSQL leases (the default) or on etcd "
        "(backend 'etcd' with endpoints); consul and zookeeper have no client here",
        refuse=True,
        when=lambda v: v in ("consul", "zookeeper"),
    ),
)


def _matches(rule_path: Location, path: Location) -> bool:
    return len(rule_path) == len(path) and all(
        r == "*" or r == p for r, p in zip(rule_path, path, strict=True)
    )


def _paths(data: Any, prefix: Location = ()) -> list[tuple[Location, Any]]:
    out: list[tuple[Location, Any]] = [(prefix, data)]
    if isinstance(data, dict):
        for key, value in data.items():
            out.extend(_paths(value, (*prefix, key)))
    return out


def find_notices(data: Any) -> list[tuple[Rule, Location]]:
    """The rules that apply to the raw data, with the path each applies to."""
    found = []
    for path, value in _paths(data):
        for rule in RULES:
            if _matches(rule.path, path) and rule.when(value):
                found.append((rule, path))
    return found
