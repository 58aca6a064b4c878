"""Options that are refused, each with the reason.

A user copying the seed's YAML must learn what each option does here: every option
acts, or is refused here with an error naming it and why (nothing is accepted with a
warning). Parts of the seed that describe state rather than configure it (a task
state, held locks) are refused as "not a setting". The rules are data so
``config check`` can list them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.config._yaml import Location


@dataclass(frozen=True, slots=True)
class Rule:
    """``path`` (``*`` matches one key) whose value satisfies ``when`` is refused with
    ``message``."""

    path: Location
    message: str
    when: Callable[[Any], bool] = lambda value: value is not None


NOT_A_SETTING = "not a setting: "
UNSUPPORTED = "not supported: "

RULES: tuple[Rule, ...] = (
    Rule(
        ("task_state",),
        NOT_A_SETTING + "a task's state is written by the pipeline runtime as it runs "
        "(read it with StateManager.get_task_state); remove this block",
    ),
    Rule(
        ("shared_state", "locks"),
        NOT_A_SETTING + "locks are taken at run time with DistributedLock(name, ttl) "
        "and listed by StateManager.get_shared_state; a lock in a file would have no "
        "holder to release it; remove `locks`",
        when=lambda v: bool(v),
    ),
    Rule(
        ("shared_state", "variables", "*", "updated_at"),
        NOT_A_SETTING + "a variable's updated_at is the time the log recorded its write; remove it",
    ),
    Rule(
        ("state_management", "config", "format"),
        UNSUPPORTED + "format 'pickle' would run arbitrary code when a snapshot is read "
        "back; use 'json' or 'msgpack'",
        when=lambda v: v == "pickle",
    ),
    Rule(
        ("distributed", "coordination", "backend"),
        UNSUPPORTED + "coordination runs on PostgreSQL leases (the default) or on etcd "
        "(backend 'etcd' with endpoints); consul and zookeeper have no client here",
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
