"""Retry, checkpoint and recovery policies: the seed's YAML blocks as small pure values.

No I/O here: the executor asks these objects *whether* and *when*, and does the rest.

=============================================  ==========================================
setting                                        behaviour
=============================================  ==========================================
``recovery.strategies.task_failure``           :class:`RetryPolicy`: a failed attempt is
  ``max_attempts``, ``backoff``,               retried while ``attempt < max_attempts``,
  ``base_delay``, ``max_delay``                after ``base * 2**(n-1)`` s (exponential,
                                               capped) or ``base`` s (constant), with full
                                               jitter in [delay/2, delay]
``checkpointing.strategy: progressive``        after each task of ``after_tasks`` (all
  ``after_tasks``, ``min_interval``            tasks when empty) completes, unless the
                                               last automatic one is < ``min_interval`` s old
``checkpointing.strategy: on_success``         after each task of ``tasks`` (all when
  ``tasks``                                    empty) completes
``checkpointing.strategy: periodic``           every ``interval`` s while the execution
  ``interval``                                 runs, when anything changed
``checkpointing.enabled: false``               no automatic checkpoints (manual ones work)
=============================================  ==========================================
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from orchestrator.commands import ExecutionNotOwned, LeaseLost
from orchestrator.events import OrchestratorStateError

Backoff = Literal["exponential", "constant"]
Strategy = Literal["progressive", "periodic", "on_success"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how late a failed task runs again (``retry_from_checkpoint``)."""

    max_attempts: int = 3
    backoff: Backoff = "exponential"
    base_delay: float = 1.0
    max_delay: float = 60.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("base_delay and max_delay must be >= 0")

    def should_retry(self, attempts_used: int, retryable: bool) -> bool:
        """Whether to run again after ``attempts_used`` attempts, the last one failed."""
        return retryable and attempts_used < self.max_attempts

    def delay(self, failed_attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before the attempt after ``failed_attempt`` (1-based)."""
        if self.backoff == "constant":
            ceiling = self.base_delay
        else:
            ceiling = self.base_delay * 2 ** max(0, failed_attempt - 1)
        ceiling = min(ceiling, self.max_delay)
        if not self.jitter or ceiling == 0:
            return ceiling
        # "Equal jitter": never less than half the delay, so backoff still backs off,
        # yet retries of many executions failing together spread out.
        return (rng or random).uniform(ceiling / 2, ceiling)


def is_retryable(error: BaseException) -> bool:
    """Our errors carry ``retriable``; others may carry ``retryable``; default: retry."""
    if isinstance(error, LeaseLost | ExecutionNotOwned):
        return False
    explicit = getattr(error, "retryable", None)
    if isinstance(explicit, bool):
        return explicit
    if isinstance(error, OrchestratorStateError):
        return bool(error.retriable)
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointPolicy:
    """When the runtime saves checkpoints by itself (the seed's ``checkpointing``)."""

    enabled: bool = True
    strategy: Strategy = "progressive"
    after_tasks: frozenset[str] = field(default_factory=frozenset)
    min_interval: float = 60.0
    interval: float = 300.0
    on_success_tasks: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(
        cls,
        strategy: Strategy = "progressive",
        *,
        enabled: bool = True,
        after_tasks: Iterable[str] = (),
        min_interval: float = 60.0,
        interval: float = 300.0,
        on_success_tasks: Iterable[str] = (),
    ) -> CheckpointPolicy:
        return cls(
            enabled=enabled,
            strategy=strategy,
            after_tasks=frozenset(after_tasks),
            min_interval=min_interval,
            interval=interval,
            on_success_tasks=frozenset(on_success_tasks),
        )

    def after_task(self, task_id: str, now: float, last_auto: float | None) -> bool:
        """Whether to checkpoint now that ``task_id`` completed (``now``/``last_auto``:
        monotonic seconds; ``last_auto`` is when the last automatic one was saved)."""
        if not self.enabled:
            return False
        if self.strategy == "progressive":
            if self.after_tasks and task_id not in self.after_tasks:
                return False
            return last_auto is None or now - last_auto >= self.min_interval
        if self.strategy == "on_success":
            return not self.on_success_tasks or task_id in self.on_success_tasks
        return False

    @property
    def periodic_interval(self) -> float | None:
        """Seconds between timer checkpoints, or ``None`` without the periodic strategy."""
        if self.enabled and self.strategy == "periodic":
            return self.interval
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryPolicy:
    """The seed's ``recovery`` block, as the supervisor and the heartbeat use it.

    ``crash_timeout``: an execution whose lease expired and that made no progress for
    this long is resumed (``pipeline_crash``). ``failover_timeout``: the executions of a
    node whose heartbeat lapsed this long ago are moved (``node_failure``).
    ``health_interval``/``health_timeout``/``failure_threshold``: every node renews the
    lease ``node:<id>`` every interval (each try bounded by the timeout); the lease's
    ttl is ``interval * failure_threshold``, so a node that missed that many
    heartbeats is failed on the database's clock. The supervisor's leader election
    uses the same ttl. ``max_concurrent``: how many recovered executions one node
    drives at once (``recovery.max_concurrent_recoveries``, ours); the rest wait for
    a later scan, so a node that inherits hundreds of orphans is not swamped.
    """

    enabled: bool = True
    crash_timeout: float = 300.0
    failover_timeout: float = 60.0
    health_interval: float = 30.0
    health_timeout: float = 10.0
    failure_threshold: int = 3
    scan_interval: float | None = None
    max_concurrent: int = 32

    def __post_init__(self) -> None:
        if self.max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {self.max_concurrent}")

    @property
    def node_ttl(self) -> float:
        return self.health_interval * self.failure_threshold

    @property
    def scan_every(self) -> float:
        """How often the leader scans: the interval, or sooner for short timeouts."""
        if self.scan_interval is not None:
            return self.scan_interval
        bounds = [self.health_interval]
        bounds += [t / 3 for t in (self.crash_timeout, self.failover_timeout) if t > 0]
        return max(0.1, min(bounds))


@dataclass(frozen=True, slots=True, kw_only=True)
class Policies:
    """The runtime's behaviour, from the seed's ``checkpointing`` and ``recovery`` blocks."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    checkpoints: CheckpointPolicy = field(default_factory=CheckpointPolicy)
    recovery: RecoveryPolicy = field(default_factory=RecoveryPolicy)


def default_policies(runtime: object | None = None) -> Policies:
    """The policies of ``runtime`` (``StateRuntime.policies``: what the app that built
    it read from the configuration file), else the seed's defaults."""
    found = getattr(runtime, "policies", None)
    return found if isinstance(found, Policies) else Policies()
