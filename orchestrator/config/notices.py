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
        ("state_management", "event_store", "topics", "task_events"),
        UNNECESSARY + "task events stay in the execution's own stream "
        "(state_management.event_store.topics.pipeline_events) to keep one total order "
        "per execution; no separate task topic is created",
        refuse=False,
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
        UNNECESSARY + "coordination (locks, leases, leader election) runs on PostgreSQL "
        "leases with fencing epochs; etcd/consul/zookeeper endpoints are not contacted",
        refuse=False,
        when=lambda v: v != "postgresql",
    ),
    Rule(
        ("distributed", "synchronization", "replication", "sync_interval"),
        UNNECESSARY + "Kafka replicates every write before acknowledging it (acks=all, "
        "min.insync.replicas = min_replicas); there is no periodic sync to time",
        refuse=False,
    ),
    Rule(
        ("caching",),
        UNNECESSARY + "reads come from PostgreSQL read models kept current by NOTIFY "
        "(and streamed over SSE); no cache levels are run, so these settings are not used",
        refuse=False,
    ),
    Rule(
        ("state_management", "config", "compression"),
        "accepted with a substitution: snapshots are compressed with zstd (the "
        "`compression` block sets its level); gzip is not implemented",
        refuse=False,
        when=lambda v: v == "gzip",
    ),
    Rule(
        ("compression", "algorithm"),
        "accepted with a substitution: zstd is used; gzip is not implemented",
        refuse=False,
        when=lambda v: v == "gzip",
    ),
    Rule(
        ("compression", "selective", "exclude_fields"),
        "not implemented yet: the whole payload is compressed when above min_size",
        refuse=False,
        when=lambda v: bool(v),
    ),
    Rule(
        ("state_management", "config", "max_size"),
        "not implemented yet for the memory backend: snapshots in memory are not "
        "bounded or evicted, and persistence is not dumped to disk",
        refuse=False,
    ),
    Rule(
        ("compression", "algorithm"),
        UNSUPPORTED + "only 'zstd' and 'gzip' are implemented",
        refuse=True,
        when=lambda v: v in ("lz4", "snappy"),
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
