"""`orchestrator-state`'s command tree: one module per sub-command group, assembled in `root.py`."""

from orchestrator._cli.root import app, main

__all__ = ["app", "main"]
