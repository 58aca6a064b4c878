"""What every settings model shares: unknown keys refused, frozen; sizes like "100MB"."""

from __future__ import annotations

import re

from pydantic import ConfigDict

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?B)\s*$", re.IGNORECASE)
_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def parse_size(value: str | int) -> int:
    """``"100MB"`` → bytes (binary units, as the seed's sizes are meant)."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a size like '512MB' or '1GB'")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


FORBID_UNKNOWN = ConfigDict(extra="forbid", frozen=True)
"""Every settings block: an unknown key is an error (with its position), values frozen."""
