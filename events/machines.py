"""The status state machines: the seed's pipeline lifecycle and a task lifecycle.

Plain tables so the fold, the write side's ``decide`` and the ``StateMachine`` base
class of ``orchestrator.state`` all read the same transitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.events.catalogue import actions
from orchestrator.events.errors import InvalidTransition


@dataclass(frozen=True, slots=True)
class Transition:
    """``on`` moves a machine from any of ``sources`` to ``target``."""

    on: str
    sources: frozenset[str]
    target: str


@dataclass(frozen=True, slots=True)
class Machine:
    """A named set of states and transitions; ``next`` answers or raises."""

    name: str
    states: tuple[str, ...]
    initial: str
    terminal: frozenset[str]
    transitions: tuple[Transition, ...]

    def next(self, status: str | None, on: str, *, subject: str = "") -> str:
        """The status after ``on`` from ``status``, or ``InvalidTransition``."""
        for transition in self.transitions:
            if transition.on == on and status in transition.sources:
                return transition.target
        raise InvalidTransition(subject or self.name, status, on)

    def allowed(self, status: str | None) -> list[str]:
        """The actions allowed from ``status``, for error messages and UIs."""
        return [t.on for t in self.transitions if status in t.sources]

    def as_table(self) -> Mapping[str, list[tuple[str, str]]]:
        """``{action: [(from, to), ...]}``, the seed's transition list regrouped."""
        table: dict[str, list[tuple[str, str]]] = {}
        for t in self.transitions:
            for source in sorted(t.sources):
                table.setdefault(t.on, []).append((source, t.target))
        return table


def _t(on: str, sources: str | list[str], target: str) -> Transition:
    return Transition(on, frozenset([sources] if isinstance(sources, str) else sources), target)


PIPELINE_MACHINE = Machine(
    name="pipeline",
    states=("initialized", "validating", "running", "paused", "completed", "failed", "cancelled"),
    initial="initialized",
    terminal=frozenset({"completed", "failed", "cancelled"}),
    transitions=(
        # The seed's transitions, as written in its "State Machines" section.
        _t("start", "initialized", "validating"),
        _t("validation_success", "validating", "running"),
        _t("validation_failure", "validating", "failed"),
        _t("pause", "running", "paused"),
        _t("resume", "paused", "running"),
        _t("finish", "running", "completed"),
        _t("error", "running", "failed"),
        _t("cancel", ["running", "paused"], "cancelled"),
        # Ours: the seed's "Manual Recovery" resumes a failed execution, so failed is
        # terminal for the run but not for the record.
        _t("recover", "failed", "running"),
    ),
)

TASK_MACHINE = Machine(
    name="task",
    states=("pending", "scheduled", "running", "completed", "failed", "retrying", "skipped"),
    initial="pending",
    terminal=frozenset({"completed", "skipped"}),
    transitions=(
        _t("schedule", "pending", "scheduled"),
        # ``running`` → ``running``: a new attempt after the worker running it crashed.
        _t("start", ["pending", "scheduled", "retrying", "failed", "running"], "running"),
        _t("complete", "running", "completed"),
        _t("fail", "running", "failed"),
        _t("retry", "failed", "retrying"),
        _t("skip", ["pending", "scheduled", "failed", "retrying"], "skipped"),
    ),
)

# Which action each execution and task event performs (declared with the event in the
# catalogue; ``events.registry`` checks each is an action of its machine).
PIPELINE_ACTIONS: Mapping[str, str] = actions("execution")
TASK_ACTIONS: Mapping[str, str] = actions("task")

# Execution statuses in which work (task events, checkpoints) may be recorded.
ACTIVE_STATUSES = frozenset({"running", "paused"})
