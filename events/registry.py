"""The catalogue's completeness check: every event type has a schema and a fold case.

A new event type is three places (see ``events.catalogue``); this check refuses one
that misses a place, naming the type and what to add, so the gap shows at start-up
(the default codec runs it once) and in ``tests/unit/test_catalogue.py``, not as an
event the codec cannot encode or the fold rejects in production.
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.events.catalogue import CATALOGUE, EventSpec, Payload
from orchestrator.events.errors import EventsError, error_fields
from orchestrator.events.fold import folded_types
from orchestrator.events.machines import PIPELINE_MACHINE, TASK_MACHINE
from orchestrator.events.schemas import SchemaSet, default_registry, payload_names

SYNC_COMMAND = "python -m orchestrator.events.schemas sync"


@error_fields("event type {event_type}: {reason}")
class CatalogueError(EventsError):
    """An event type the catalogue registers without one of its places."""

    event_type: str
    reason: str


def check_catalogue(
    catalogue: Mapping[str, EventSpec] = CATALOGUE,
    schema_set: SchemaSet | None = None,
    folded: frozenset[type[Payload]] | None = None,
) -> None:
    """Raise :class:`CatalogueError` for the first incomplete entry of ``catalogue``
    (default: the real one, against ``schemas/current`` and the fold's cases)."""
    schema_set = default_registry().current if schema_set is None else schema_set
    folded = folded_types() if folded is None else folded
    machines = {"execution": PIPELINE_MACHINE, "task": TASK_MACHINE}
    for name, spec in catalogue.items():
        if name not in schema_set.records:
            raise CatalogueError(name, f"no schema: add {schema_set.directory}/{name}.avsc")
        if spec.cls not in folded:
            raise CatalogueError(name, "no fold case: register one with @_case in events/fold.py")
        if spec.action is not None:
            machine = machines[spec.kind]
            if spec.action not in {t.on for t in machine.transitions}:
                reason = f"action {spec.action!r} is not a transition of the {machine.name}"
                raise CatalogueError(name, reason + " state machine")
    union = payload_names(schema_set)
    if union != list(catalogue):
        first = next(
            (n for n in catalogue if n not in union),
            next((a for a, b in zip(union, catalogue, strict=False) if a != b), union[-1]),
        )
        raise CatalogueError(
            first,
            f"the Envelope's payload union in {schema_set.directory} is not the catalogue's "
            f"(in its order): run `{SYNC_COMMAND}`",
        )
