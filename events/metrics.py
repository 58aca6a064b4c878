"""The process's Prometheus metrics: one registry, recorded where things happen.

This is the single place where metrics are defined. Every layer records through the
small functions below (the writer its commands, the processor what it applied, the
snapshotter what it wrote, the runtime its recoveries, the API its reads); every
long-running process exposes the same registry, either on its own HTTP app (the API)
or on a small metrics server (:func:`serve`).

Names follow Prometheus' conventions: the common prefix ``orchestrator_state_``, units
in names (``_seconds``, ``_bytes``, ``_records``), ``_total`` on counters, durations as
histograms in seconds. :data:`SEED_METRICS` maps each of the seed's seven names
(``monitoring.metrics``) to the families it stands for; :func:`select` restricts the
exposition to the chosen names. :data:`ALWAYS` are health families no seed name
covers (dead letters, leadership, build info); they are always exported, as are the
process collectors (``process_*``, ``python_*``).

``cache_hit_rate`` is exported as counters ``orchestrator_state_cache_requests_total
{level, result}`` (``result`` is ``hit`` or ``miss``); the rate is derived in PromQL,
as the dashboards do. A cache calls :func:`record_cache_request`.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import Metric

PREFIX = "orchestrator_state_"
_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])

#: The seed's ``monitoring.metrics`` names → the families each one exports.
SEED_METRICS: Mapping[str, tuple[str, ...]] = {
    "state_operations_total": (
        "orchestrator_state_operations_total",
        "orchestrator_state_events_applied_total",
    ),
    "state_operation_duration": ("orchestrator_state_operation_duration_seconds",),
    "state_size_bytes": (
        "orchestrator_state_read_model_size_bytes",
        "orchestrator_state_snapshot_size_bytes",
    ),
    "checkpoint_count": (
        "orchestrator_state_checkpoints_saved_total",
        "orchestrator_state_checkpoints",
        "orchestrator_state_snapshots_written_total",
        "orchestrator_state_snapshot_last_written_timestamp_seconds",
    ),
    "recovery_attempts": (
        "orchestrator_state_recovery_attempts_total",
        "orchestrator_state_recovery_decisions_total",
    ),
    "cache_hit_rate": ("orchestrator_state_cache_requests_total",),
    "sync_lag_seconds": (
        "orchestrator_state_sync_lag_seconds",
        "orchestrator_state_consumer_lag_records",
    ),
}

#: Health families exported whatever ``monitoring.metrics`` says.
ALWAYS: tuple[str, ...] = (
    "orchestrator_state_dead_letters_total",
    "orchestrator_state_leader",
    "orchestrator_state_leases_lost_total",
)

RECOVERY_KINDS = ("task_retry", "pipeline_crash", "node_failure")
RECOVERY_OUTCOMES = ("succeeded", "failed", "refused", "postponed", "cancelled")
RECOVERY_DECISIONS = ("resume_here", "assigned", "no_live_node")
CACHE_LEVELS = ("l1", "l2", "l3")

_OP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_SIZE_BUCKETS = tuple(float(256 * 4**i) for i in range(10))  # 256 B .. 64 MiB


class _Families:
    """Every family of the process, in one registry (made once, on first use)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            with contextlib.suppress(ValueError):  # registered here already
                r.register(collector)
        p = PREFIX
        self.operations = Counter(
            f"{p}operations", "State operations, by component, operation and outcome.",
            ["component", "operation", "outcome"], registry=r,
        )  # fmt: skip
        self.duration = Histogram(
            f"{p}operation_duration_seconds", "Seconds a state operation took.",
            ["component", "operation"], buckets=_OP_BUCKETS, registry=r,
        )  # fmt: skip
        self.applied = Counter(
            f"{p}events_applied", "Records a projection committed to its read model.",
            ["projection"], registry=r,
        )  # fmt: skip
        self.dead_letters = Counter(
            f"{p}dead_letters", "Poison records sent to a dead-letter topic.",
            ["projection"], registry=r,
        )  # fmt: skip
        self.sync_lag = Histogram(
            f"{p}sync_lag_seconds",
            "Seconds from append (Kafka timestamp) to read-model commit, per committed batch "
            "(its oldest record).",
            ["projection"], buckets=_LAG_BUCKETS, registry=r,
        )  # fmt: skip
        self.consumer_lag = Gauge(
            f"{p}consumer_lag_records", "Records between a consumer's position and the log end.",
            ["group", "topic", "partition"], registry=r,
        )  # fmt: skip
        self.read_model_size = Gauge(
            f"{p}read_model_size_bytes",
            "pg_total_relation_size of each read-model table (read when scraped).",
            ["table"], registry=r,
        )  # fmt: skip
        self.snapshot_size = Histogram(
            f"{p}snapshot_size_bytes", "Size of each snapshot written: raw state and stored.",
            ["form"], buckets=_SIZE_BUCKETS, registry=r,
        )  # fmt: skip
        self.checkpoints_saved = Counter(
            f"{p}checkpoints_saved", "Checkpoints saved by this process's writers.", registry=r
        )
        self.checkpoints = Gauge(
            f"{p}checkpoints", "Checkpoints in the read model (read when scraped).", registry=r
        )
        self.snapshots_written = Counter(
            f"{p}snapshots_written", "Snapshots written, by the trigger that asked for them.",
            ["trigger"], registry=r,
        )  # fmt: skip
        self.snapshot_last = Gauge(
            f"{p}snapshot_last_written_timestamp_seconds",
            "Unix time of the newest snapshot this snapshotter wrote or found in its index.",
            registry=r,
        )
        self.recovery = Counter(
            f"{p}recovery_attempts",
            "Recovery attempts (a task retried, an execution resumed), by kind and outcome.",
            ["kind", "outcome"], registry=r,
        )  # fmt: skip
        self.decisions = Counter(
            f"{p}recovery_decisions",
            "Orphaned executions the leading supervisor placed, by reason and decision.",
            ["reason", "decision"], registry=r,
        )  # fmt: skip
        self.cache = Counter(
            f"{p}cache_requests", "Cache lookups by level and result (hit or miss).",
            ["level", "result"], registry=r,
        )  # fmt: skip
        self.leader = Gauge(
            f"{p}leader", "1 while this process leads the election, else 0.",
            ["election", "node"], registry=r,
        )  # fmt: skip
        self.leases_lost = Counter(
            f"{p}leases_lost", "Execution leases this process lost while writing.", registry=r
        )


_lock = threading.Lock()
_exported: frozenset[str] = frozenset(SEED_METRICS)


@functools.cache
def families() -> _Families:
    """The process's families (created on first use, never at import)."""
    return _Families()


def registry() -> CollectorRegistry:
    """The one registry of this process (for tests and custom exposition)."""
    return families().registry


def select(seed_names: Iterable[str]) -> None:
    """Export only the families of these seed names (``monitoring.metrics``), plus ALWAYS."""
    names = frozenset(seed_names)
    unknown = sorted(names - set(SEED_METRICS))
    if unknown:
        raise ValueError(f"unknown metric name(s) {unknown}; known: {sorted(SEED_METRICS)}")
    global _exported
    with _lock:
        _exported = names


def exported_families() -> frozenset[str]:
    """Full names of the families the current selection exports (without process_*)."""
    chosen = [f for name in _exported for f in SEED_METRICS[name]]
    return frozenset((*chosen, *ALWAYS))


def _hidden() -> frozenset[str]:
    hidden = {f for fams in SEED_METRICS.values() for f in fams} - exported_families()
    return frozenset(name.removesuffix("_total") for name in hidden)


class _Selected:
    """The registry as the selection shows it (what ``generate_latest`` collects)."""

    def collect(self) -> Iterator[Metric]:
        hidden = _hidden()
        for family in registry().collect():
            if family.name not in hidden:
                yield family


def selected() -> Any:
    """The registry as :func:`select` restricts it (has ``collect()``, for exposition)."""
    return _Selected()


def render() -> bytes:
    """The text exposition of the selected families."""
    return generate_latest(_Selected())


# --- recording ----------------------------------------------------------------------


_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def record_operation(
    component: str, operation: str, seconds: float, outcome: str = "ok", count: int = 1
) -> None:
    """``count`` state operations (commands of one append, a read, an API request), their
    outcome (``ok``, ``error``; the API adds ``client_error``) and the seconds they took
    together (one duration sample per call)."""
    key = (component, operation, outcome)
    pair = _children.get(key)
    if pair is None:  # labels() costs more than the update itself: keep the children
        f = families()
        pair = _children[key] = (
            f.operations.labels(component, operation, outcome),
            f.duration.labels(component, operation),
        )
    pair[0].inc(count)
    pair[1].observe(seconds)


@contextlib.contextmanager
def timed(component: str, operation: str) -> Iterator[None]:
    """Record the enclosed block as one operation (``error`` if it raises)."""
    started = time.perf_counter()
    ok = False
    try:
        yield
        ok = True
    finally:
        outcome = "ok" if ok else "error"
        record_operation(component, operation, time.perf_counter() - started, outcome)


def timed_async(component: str) -> Callable[[_F], _F]:
    """Decorate a coroutine function: each call is one operation named after it."""

    def wrap(fn: _F) -> _F:
        name = fn.__name__

        @functools.wraps(fn)
        async def timed_call(*args: Any, **kwargs: Any) -> Any:
            with timed(component, name):
                return await fn(*args, **kwargs)

        return timed_call  # type: ignore[return-value]

    return wrap


def record_checkpoints_saved(count: int = 1) -> None:
    families().checkpoints_saved.inc(count)


def record_applied(projection: str, timestamps_ms: Sequence[int], dead_letters: int) -> None:
    """A projection committed these records (their Kafka timestamps): count, DLQ, and the
    batch's sync lag: its oldest record's seconds from append to commit (one sample per
    batch, the worst of the batch, so the histogram costs nothing per record)."""
    if not timestamps_ms:
        return
    f = families()
    f.applied.labels(projection).inc(len(timestamps_ms))
    if dead_letters:
        f.dead_letters.labels(projection).inc(dead_letters)
    oldest = min(timestamps_ms)
    f.sync_lag.labels(projection).observe(max(0.0, time.time() - oldest / 1000.0))


def start_projection(projection: str) -> None:
    """Create a projection's series at zero, so rates and alerts see them from the start."""
    f = families()
    f.applied.labels(projection)
    f.dead_letters.labels(projection)
    f.sync_lag.labels(projection)


def record_consumer_lag(group: str, lags: Mapping[tuple[str, int], int]) -> None:
    """Records behind the log end, per partition a consumer owns."""
    gauge = families().consumer_lag
    for (topic, partition), records in lags.items():
        gauge.labels(group, topic, str(partition)).set(max(0, records))


def forget_consumer_lag(group: str, tps: Iterable[tuple[str, int]]) -> None:
    """Partitions no longer owned: their lag is someone else's to report."""
    gauge = families().consumer_lag
    for topic, partition in tps:
        with contextlib.suppress(KeyError):
            gauge.remove(group, topic, str(partition))


def record_snapshots(sizes: Sequence[tuple[int, int]], triggers: Mapping[str, int]) -> None:
    """Snapshots written: ``(raw, stored)`` bytes of each, and how many each trigger asked."""
    f = families()
    for raw, stored in sizes:
        f.snapshot_size.labels("raw").observe(raw)
        f.snapshot_size.labels("stored").observe(stored)
    for trigger, count in triggers.items():
        f.snapshots_written.labels(trigger).inc(count)
    if sizes:
        f.snapshot_last.set(time.time())


def start_snapshotter(newest: float | None) -> None:
    """At start: the newest snapshot in the index (unix time), for the snapshot-age alert."""
    f = families()
    for form in ("raw", "stored"):
        f.snapshot_size.labels(form)
    if newest is not None:
        f.snapshot_last.set(newest)


def record_read_model(table_sizes: Mapping[str, int], checkpoints: int) -> None:
    """What the API reads from PostgreSQL when scraped."""
    f = families()
    for table, size in table_sizes.items():
        f.read_model_size.labels(table).set(size)
    f.checkpoints.set(checkpoints)


def record_recovery(kind: str, outcome: str) -> None:
    """One recovery attempt ended (or was refused or postponed) with ``outcome``."""
    families().recovery.labels(kind, outcome).inc()


def record_decision(reason: str, decision: str) -> None:
    """The leading supervisor placed an orphan (``resume_here``, ``assigned``) or could not."""
    families().decisions.labels(reason, decision).inc()


def start_recovery() -> None:
    """Create every recovery series at zero (a process that may recover or supervise)."""
    f = families()
    for kind in RECOVERY_KINDS:
        for outcome in RECOVERY_OUTCOMES:
            f.recovery.labels(kind, outcome)
    for reason in RECOVERY_KINDS[1:]:
        for decision in RECOVERY_DECISIONS:
            f.decisions.labels(reason, decision)
    f.leases_lost.inc(0)


def record_cache_request(level: str, hit: bool) -> None:
    """A cache lookup at ``level`` (``l1``, ``l2``, ``l3``): the hit rate's input."""
    families().cache.labels(level, "hit" if hit else "miss").inc()


def start_cache(levels: Iterable[str] = CACHE_LEVELS) -> None:
    """Create the cache series at zero for the configured levels."""
    f = families()
    for level in levels:
        f.cache.labels(level, "hit")
        f.cache.labels(level, "miss")


def record_leader(election: str, node: str, leading: bool) -> None:
    families().leader.labels(election, node).set(1 if leading else 0)


def record_lease_lost() -> None:
    families().leases_lost.inc()
