"""Facade names imported on first use (PEP 562), so a process that never touches them
does not pay for their heavy dependencies at start-up (a resumed run's process starts
sooner when it skips FastAPI, boto3, redis and httpx)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``exports`` maps a public name to the
    module (absolute, or relative to ``package`` with a leading dot) that defines it.

    An entry may rename: ``"alias": "module:name"``.
    """
    module_globals = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, _, attribute = target.partition(":")
        module = importlib.import_module(module_name, package)
        value = getattr(module, attribute or name)
        module_globals[name] = value  # later lookups are plain attribute reads
        return value

    return __getattr__
