"""``App.state_manager()``'s manager: a ``StateManager`` with the configured strategy.

Kept for its name; the rules themselves live in one place, ``orchestrator.state.sync``
(see ``StateManager``'s docstring), and every read path asks it.
"""

from __future__ import annotations

from orchestrator.state import STRATEGIES, Consistency, StateManager, StateRuntime


class ConfiguredStateManager(StateManager):
    """A ``StateManager`` whose defaults come from the ``distributed`` settings."""

    def __init__(
        self,
        runtime: StateRuntime | None = None,
        *,
        strategy: str = "eventual",
        conflict_resolution: str = "last_write_wins",
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"synchronization.strategy {strategy!r}")
        mode: Consistency = strategy
        super().__init__(runtime, strategy=mode, conflict_resolution=conflict_resolution)
