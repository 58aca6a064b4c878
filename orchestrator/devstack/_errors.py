"""Errors of the dev stack.

    OrchestratorStateError                (events.errors)
    └── DevstackError                     a local service could not be provided
        ├── ToolMissingError              java / mvn / weed / tansu is not installed
        └── ServiceStartError             a server did not become ready (carries its log tail)

They carry fields, not only strings, so the CLI and the test harness can show the
log of the server that failed without parsing messages.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.events import OrchestratorStateError


class DevstackError(OrchestratorStateError):
    """A local service (Kafka, PostgreSQL, S3) could not be provided."""


class ToolMissingError(DevstackError):
    """An executable the dev stack needs is not installed."""

    def __init__(self, tool: str, hint: str) -> None:
        self.tool = tool
        self.hint = hint
        super().__init__(f"{tool} not found: {hint}")


class ServiceStartError(DevstackError):
    """A server exited or did not become ready in time; the message ends with its log tail."""

    def __init__(self, service: str, reason: str, log_path: Path | None, log_tail: str) -> None:
        self.service = service
        self.reason = reason
        self.log_path = log_path
        self.log_tail = log_tail
        where = f" ({log_path})" if log_path is not None else ""
        super().__init__(
            f"{service} failed to start: {reason}\n"
            f"--- last lines of the {service} log{where} ---\n{log_tail}"
        )
