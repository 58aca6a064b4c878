"""See history: replay, trace, consistency check, bottlenecks, fork (design §6).

* :class:`StateDebugger`: the seed's ``check_consistency``, ``trace_state_changes``,
  ``analyze_bottlenecks``, plus ``replay`` / ``replay_steps``;
* :class:`Replayer`: the debugging face of the history service
  (``events.History``): an execution's state at a sequence, time or checkpoint
  (newest snapshot + the events after it), or every step to it, streamed from the
  event archive or the Kafka log;
* :func:`fork_execution`: a new execution from another one's state;
* :func:`diff` and :func:`analyze`: the pure helpers the above are built on.
"""

from orchestrator.debug.bottlenecks import (
    BottleneckReport,
    RetriedTask,
    TaskTiming,
    Wait,
    analyze,
)
from orchestrator.debug.consistency import ConsistencyReport, DeadLetterSummary
from orchestrator.debug.debugger import StateDebugger
from orchestrator.debug.diff import Change, diff, to_jsonable
from orchestrator.debug.errors import ForkError, HistoryError, HistoryNotFound, PartitionUnknown
from orchestrator.debug.folding import Mismatch, SequenceGap
from orchestrator.debug.fork import ForkResult, fork_execution, plan_fork
from orchestrator.debug.render import (
    bottlenecks_view,
    consistency_view,
    provenance,
    state_view,
    step_json,
    step_view,
    trace_view,
)
from orchestrator.debug.replay import Replayed, Replayer, ReplayStep, Source, Target
from orchestrator.debug.trace import StateTrace, TraceEntry
from orchestrator.debug.web import install_snapshot_states

__all__ = [
    "BottleneckReport",
    "Change",
    "ConsistencyReport",
    "DeadLetterSummary",
    "ForkError",
    "ForkResult",
    "HistoryError",
    "HistoryNotFound",
    "Mismatch",
    "PartitionUnknown",
    "ReplayStep",
    "Replayed",
    "Replayer",
    "RetriedTask",
    "SequenceGap",
    "Source",
    "StateDebugger",
    "StateTrace",
    "Target",
    "TaskTiming",
    "TraceEntry",
    "Wait",
    "analyze",
    "bottlenecks_view",
    "consistency_view",
    "diff",
    "fork_execution",
    "install_snapshot_states",
    "plan_fork",
    "provenance",
    "state_view",
    "step_json",
    "step_view",
    "to_jsonable",
    "trace_view",
]
