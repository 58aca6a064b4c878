"""The master key ring (AES-256 keys, from the environment, with rotation).

It encrypts snapshots (``snapshots.codec``) and wraps the per-execution data keys that
encrypt user data (``events.crypto``); it lives here, at the bottom, so both can use it.

``ORCHESTRATOR_SNAPSHOT_KEYS="kid1:<base64 key>,kid2:<base64 key>"`` lists every key that
may have encrypted a snapshot; ``ORCHESTRATOR_SNAPSHOT_ACTIVE_KEY=kid2`` names the one new
snapshots use. Rotation is adding a key and switching the active id: the old keys stay
listed so the snapshots they encrypted still decrypt. Keys come only from the
environment (or whatever mapping the entry point passes), never from configuration files.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestrator.events.errors import EventsError, error_fields

KEYS_ENV = "ORCHESTRATOR_SNAPSHOT_KEYS"
ACTIVE_KEY_ENV = "ORCHESTRATOR_SNAPSHOT_ACTIVE_KEY"
KEY_BYTES = 32


@error_fields("{key}: {reason}")
class KeyConfigError(EventsError):
    """A key ring the environment describes wrongly; ``key`` names the variable."""

    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Key ids to 32-byte AES keys, and the id that encrypts new snapshots."""

    keys: Mapping[str, bytes] = field(repr=False)
    active: str

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise KeyConfigError(
                ACTIVE_KEY_ENV, f"active key id {self.active!r} is not in {KEYS_ENV}"
            )
        for kid, key in self.keys.items():
            if len(key) != KEY_BYTES:
                raise KeyConfigError(
                    KEYS_ENV, f"key {kid!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}"
                )
            if not kid or any(ch in kid for ch in ":,") or kid != kid.strip():
                raise KeyConfigError(KEYS_ENV, f"key id {kid!r} is empty or has ':' or ','")

    def key(self, kid: str) -> bytes | None:
        """The key with id ``kid``, or ``None`` if this ring does not hold it."""
        return self.keys.get(kid)

    @classmethod
    def parse(cls, keys: str, active: str | None = None) -> KeyRing:
        """Read ``"kid:base64,kid:base64"``; the active key defaults to the last one listed."""
        parsed: dict[str, bytes] = {}
        for item in (part.strip() for part in keys.split(",")):
            if not item:
                continue
            kid, sep, encoded = item.partition(":")
            if not sep:
                raise KeyConfigError(KEYS_ENV, f"entry {kid!r} is not 'kid:base64key'")
            try:
                parsed[kid.strip()] = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise KeyConfigError(KEYS_ENV, f"key {kid!r} is not base64: {exc}") from None
        if not parsed:
            raise KeyConfigError(KEYS_ENV, "no keys listed")
        return cls(parsed, active.strip() if active else list(parsed)[-1])

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KeyRing | None:
        """The ring the environment describes, or ``None`` when no keys are set."""
        env = os.environ if environ is None else environ
        keys = env.get(KEYS_ENV, "").strip()
        if not keys:
            if env.get(ACTIVE_KEY_ENV):
                raise KeyConfigError(KEYS_ENV, f"{ACTIVE_KEY_ENV} is set but no keys are")
            return None
        return cls.parse(keys, env.get(ACTIVE_KEY_ENV))


def generate_key() -> str:
    """A fresh random key, base64-encoded, ready for ``ORCHESTRATOR_SNAPSHOT_KEYS``."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()
