"""The master key ring, re-exported: it lives in ``events.keys`` (user data uses it too)."""

from orchestrator.events import (
    ACTIVE_KEY_ENV,
    KEY_BYTES,
    KEYS_ENV,
    KeyConfigError,
    KeyRing,
    generate_key,
)

__all__ = ["ACTIVE_KEY_ENV", "KEYS_ENV", "KEY_BYTES", "KeyConfigError", "KeyRing", "generate_key"]
