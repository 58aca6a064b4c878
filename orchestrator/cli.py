"""`orchestrator-state`'s entry point; the command tree is assembled in ``orchestrator._cli``."""

from orchestrator._cli import app, main

__all__ = ["app", "main"]
