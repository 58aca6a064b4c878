"""``StateMachine``: the seed's declarative state machines, with async enter/exit hooks.

A subclass lists ``states`` and ``transitions`` (``{"from": str | [str], "to": str,
"on": str}``), exactly as the seed writes them. ``await machine.trigger("pause")`` (or
``await machine.pause()``: every ``on`` name becomes a method unless the class defines
one) moves the machine, awaiting ``on_exit_<old>`` then ``on_enter_<new>`` if defined;
an event not allowed from the current state raises ``InvalidTransition`` and changes
nothing.

:class:`PipelineStateMachine` is built from ``events.machines.PIPELINE_MACHINE``, the
table the fold and ``decide`` use, so the execution lifecycle is defined once.
``machine()`` turns any subclass back into such a table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar

from orchestrator.events import PIPELINE_MACHINE, InvalidTransition, Machine, Transition


def _sources(spec: Mapping[str, Any]) -> list[str]:
    source = spec["from"]
    return [source] if isinstance(source, str) else list(source)


class StateMachine:
    """Base class: subclasses set ``states`` and ``transitions`` (the first state is
    the initial one unless ``initial`` is set)."""

    states: ClassVar[Sequence[str]] = ()
    transitions: ClassVar[Sequence[Mapping[str, Any]]] = ()
    initial: ClassVar[str | None] = None
    terminal: ClassVar[frozenset[str] | None] = None
    """Final states; by default those without an outgoing transition."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        known = set(cls.states)
        for spec in cls.transitions:
            missing = {k for k in ("from", "to", "on") if k not in spec}
            if missing:
                raise TypeError(f"{cls.__name__}: transition {spec!r} lacks {sorted(missing)}")
            unknown = {*_sources(spec), spec["to"]} - known
            if unknown:
                raise TypeError(f"{cls.__name__}: transition {spec!r} names unknown {unknown}")
            event = spec["on"]
            if not hasattr(cls, event):
                setattr(cls, event, _event_method(event))

    def __init__(self, state: str | None = None) -> None:
        start = state or self.initial or (self.states[0] if self.states else None)
        if start is None or start not in self.states:
            raise ValueError(f"{type(self).__name__}: {start!r} is not one of {self.states}")
        self.state = start

    @classmethod
    def machine(cls) -> Machine:
        """This class's states and transitions as an ``events.machines.Machine``."""
        terminal = cls.terminal
        if terminal is None:
            terminal = frozenset(
                s for s in cls.states if not any(s in _sources(t) for t in cls.transitions)
            )
        return Machine(
            name=cls.__name__,
            states=tuple(cls.states),
            initial=cls.initial or cls.states[0],
            terminal=terminal,
            transitions=tuple(
                Transition(t["on"], frozenset(_sources(t)), t["to"]) for t in cls.transitions
            ),
        )

    def allowed(self) -> list[str]:
        """The events allowed from the current state."""
        return [t["on"] for t in self.transitions if self.state in _sources(t)]

    def can(self, event: str) -> bool:
        """Whether ``event`` is allowed from the current state."""
        return event in self.allowed()

    async def trigger(self, event: str) -> str:
        """Fire ``event``: exit hook, change state, enter hook; the new state."""
        for spec in self.transitions:
            if spec["on"] == event and self.state in _sources(spec):
                old, new = self.state, str(spec["to"])
                await self._hook(f"on_exit_{old}")
                self.state = new
                await self._hook(f"on_enter_{new}")
                return new
        raise InvalidTransition(type(self).__name__, self.state, event)

    async def _hook(self, name: str) -> None:
        hook: Callable[[], Awaitable[None]] | None = getattr(self, name, None)
        if hook is not None:
            await hook()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} state={self.state!r}>"


def _event_method(event: str) -> Callable[[StateMachine], Awaitable[str]]:
    async def fire(self: StateMachine) -> str:
        return await self.trigger(event)

    fire.__name__ = event
    fire.__doc__ = f"Fire ``{event}`` (see ``trigger``)."
    return fire


def _transitions_of(machine: Machine) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for t in machine.transitions:
        sources = sorted(t.sources, key=machine.states.index)
        out.append(
            {"from": sources[0] if len(sources) == 1 else sources, "to": t.target, "on": t.on}
        )
    return out


class PipelineStateMachine(StateMachine):
    """The execution lifecycle: the seed's pipeline machine plus ``recover``
    (failed → running, the seed's manual recovery), from ``PIPELINE_MACHINE``."""

    states = tuple(PIPELINE_MACHINE.states)
    transitions = tuple(_transitions_of(PIPELINE_MACHINE))
    initial = PIPELINE_MACHINE.initial
    terminal = PIPELINE_MACHINE.terminal
