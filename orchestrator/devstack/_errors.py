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

from orchestrator.events import OrchestratorStateError, error_fields


class DevstackError(OrchestratorStateError):
    """A local service (Kafka, PostgreSQL, S3) could not be provided."""


@error_fields("{tool} not found: {hint}")
class ToolMissingError(DevstackError):
    """An executable the dev stack needs is not installed."""

    tool: str
    hint: str


@error_fields(
    "{service} failed to start: {reason}\n--- last lines of the {service} log{_where} ---\n"
    "{log_tail}"
)
class ServiceStartError(DevstackError):
    """A server exited or did not become ready in time; the message ends with its log tail."""

    service: str
    reason: str
    log_path: Path | None
    log_tail: str

    @property
    def _where(self) -> str:
        return f" ({self.log_path})" if self.log_path is not None else ""
