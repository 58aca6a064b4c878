"""Sub-command groups of `orchestrator-state`, one module each; registered in `orchestrator.cli`."""
