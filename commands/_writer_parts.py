"""The writer's settings and a prepared batch (``commands.writer``), apart so the
writer module holds only the write path itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orchestrator.commands._deltas import DEFAULT_FULL_EVERY, encode_checkpoint
from orchestrator.commands.ports import UserDataSettings
from orchestrator.events import Envelope, ExecutionState

if TYPE_CHECKING:
    from orchestrator.commands.writer import ExecutionWriter

__all__ = ["Prepared", "WriterSettings", "encode_checkpoint"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WriterSettings:
    """``lease_ttl`` seconds per lease tenure, renewed every ``renew_interval`` (default a
    third of the ttl); ``read_model_timeout`` bounds the takeover's wait."""

    lease_ttl: float = 30.0
    renew_interval: float | None = None
    read_model_timeout: float = 30.0
    user_data: UserDataSettings = field(default_factory=UserDataSettings)
    checkpoint_full_every: int = DEFAULT_FULL_EVERY
    """A task's checkpoint is stored whole after this many stored as deltas (0: always
    whole); see ``commands._deltas``."""

    def __post_init__(self) -> None:
        if not self.lease_ttl > 0:
            raise ValueError(f"lease_ttl must be > 0, got {self.lease_ttl!r}")

    @property
    def renew_every(self) -> float:
        return self.renew_interval if self.renew_interval is not None else self.lease_ttl / 3


@dataclass(frozen=True, slots=True)
class Prepared:
    """A validated batch of one writer: its envelopes and the state after them."""

    writer: ExecutionWriter
    envelopes: list[Envelope]
    state: ExecutionState
    per_command: list[int]
