"""The app's own error: settings that do not describe a runnable stack."""

from __future__ import annotations


class PlanError(ValueError):
    """The settings and endpoints do not describe a runnable stack (names the setting)."""
