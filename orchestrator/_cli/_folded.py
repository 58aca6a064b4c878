"""Options several commands share, declared once and folded into the value they build.

``@folded("dep", _deployment, *DEPLOYMENT)`` replaces a command's ``dep`` parameter
(keyword-only, as ``*, dep: Deployment``) with the options ``DEPLOYMENT`` names (same
flags, same place in ``--help``) and calls
the command with ``dep=_deployment(**those options)``: each command declares what it
alone takes, and the shared block of flags and its resolution live in one place.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    """One shared option: its parameter name, type and ``typer.Option``."""
    return inspect.Parameter(
        name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=annotation
    )


def folded(into: str, build: Callable[..., Any], *options: inspect.Parameter) -> Callable[[F], F]:
    """Replace the command's parameter ``into`` with ``options``; the command receives
    ``build(**their values)`` there (typer reads the rewritten signature)."""

    def decorate(command: F) -> F:
        signature = inspect.signature(command, eval_str=True)
        if into not in signature.parameters:
            raise TypeError(f"{command.__name__} has no parameter {into!r} to fold options into")
        params: list[inspect.Parameter] = []
        for param in signature.parameters.values():
            folded_in = (o.replace(kind=param.kind) for o in options)
            params.extend(folded_in if param.name == into else (param,))

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            given = {o.name: kwargs.pop(o.name) for o in options}
            return command(*args, **kwargs, **{into: build(**given)})

        wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        wrapper.__annotations__["return"] = signature.return_annotation
        return wrapper  # type: ignore[return-value]

    return decorate
