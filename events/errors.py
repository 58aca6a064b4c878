"""Errors of the event layer, and the root of every error this product raises.

    OrchestratorStateError
    ├── EventsError
    │   ├── InvalidEvent          a payload that does not fit its schema (names the field)
    │   ├── DecodeError           bytes that are not a known event (names topic, partition, offset)
    │   ├── UserDataError         user data that cannot be read back (bad checksum, missing blob)
    │   └── LogError              the broker refused or failed (``retriable`` says whether to retry)
    │       ├── TopicMismatch     an existing topic differs from its spec (events.topics)
    │       └── KafkaUnreachable  no answer from the bootstrap servers in time (also ↓)
    ├── ServerUnreachable         Kafka, PostgreSQL or S3 not reachable: names server and address
    └── InvalidTransition         a command or event not allowed from the current status

Upper layers add their own subtrees under ``OrchestratorStateError``. Errors declare
their fields and message once with :func:`error_fields`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform

_Class = TypeVar("_Class", bound=type[BaseException])


def where(
    topic: str | None,
    partition: int | None,
    offset: int | None,
    execution_id: str | None = None,
) -> str:
    """`` at topic[p]@o (execution x)``: the record an error is about, for its message."""
    at = "" if topic is None else f" at {topic}[{partition}]@{offset}"
    who = "" if execution_id is None else f" (execution {execution_id})"
    return at + who


class _Attributes:
    """``str.format_map`` over an error's attributes (fields and properties alike)."""

    def __init__(self, error: BaseException) -> None:
        self._error = error

    def __getitem__(self, name: str) -> object:
        return getattr(self._error, name)


@dataclass_transform(eq_default=False)
def error_fields(template: str) -> Callable[[_Class], _Class]:
    """Declare an exception's fields and message once, so it is not an ``__init__`` that
    stores each argument and then formats them.

    The class's annotated attributes become its constructor's arguments (in order; after
    ``_: KW_ONLY`` keyword-only) and its attributes, as a dataclass's do. ``template`` is
    rendered with ``str.format`` over the instance's attributes (a property may compute a
    part) and becomes ``str(error)`` and ``error.args``, as ``super().__init__(message)``
    did. A field a base class sets as a class attribute (``retriable``) takes it as its
    default, as in any dataclass; ``= dataclasses.field()`` keeps it required. A
    ``__post_init__`` may normalise fields before the message is rendered. Equality
    stays identity, as for any exception; instances pickle (as every product error does).
    """

    def declare(cls: _Class) -> _Class:
        _declare(cls, template)
        return cls

    return declare


def _declare(cls: Any, template: str) -> None:
    """Make ``cls`` a dataclass whose ``__init__`` also sets the rendered message."""
    dataclasses.dataclass(eq=False, repr=False, match_args=False)(cls)
    store_fields = cls.__init__

    @functools.wraps(store_fields)
    def __init__(self: BaseException, *args: Any, **kwargs: Any) -> None:
        store_fields(self, *args, **kwargs)
        BaseException.__init__(self, template.format_map(_Attributes(self)))

    cls.__init__ = __init__
    cls.__reduce__ = _reduce


def _reduce(error: BaseException) -> tuple[Any, ...]:
    """Pickle by ``args`` and attributes: unpickling must not call ``__init__``, whose
    arguments are the fields, not the message ``args`` holds (the default would)."""
    return (_rebuilt, (type(error), error.args, error.__dict__))


def _rebuilt(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls, *args)
    error.__dict__.update(state)
    return error


class OrchestratorStateError(Exception):
    """Root of every error raised by this product."""

    retriable: bool = False

    def __reduce__(self) -> tuple[Any, ...]:
        return _reduce(self)


class EventsError(OrchestratorStateError):
    """An error in the event catalogue, codec or log."""


@error_fields("invalid {event_type}: field {field!r}: {reason}")
class InvalidEvent(EventsError):
    """An event whose payload does not fit its schema; raised before anything is sent."""

    event_type: str
    field: str
    reason: str


@dataclasses.dataclass(eq=False, repr=False, match_args=False, kw_only=True)
class AtRecord:
    """Base of errors about one log record: its position and execution, all optional
    keyword arguments, and ``_where`` (`` at topic[p]@o (execution x)``) for the message."""

    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    execution_id: str | None = None

    @property
    def _where(self) -> str:
        return where(self.topic, self.partition, self.offset, self.execution_id)


@error_fields("cannot decode event{_where}: {reason}")
class DecodeError(EventsError, AtRecord):
    """Bytes read from the log that are not a decodable event."""

    reason: str

    def at(self, topic: str, partition: int, offset: int) -> DecodeError:
        """The same error, now naming where the record was read."""
        return DecodeError(self.reason, topic=topic, partition=partition, offset=offset)


class UserDataError(EventsError):
    """Opaque user data that cannot be read back intact."""


class LogError(EventsError):
    """The Kafka log failed; ``retriable`` tells the caller whether trying again can help."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        self.retriable = retriable
        super().__init__(message)


@error_fields("cannot reach {server} at {address}: {reason}")
class ServerUnreachable(OrchestratorStateError):
    """A server could not be reached (or refused us) within the deadline."""

    retriable = True

    server: str
    address: str
    reason: str


class KafkaUnreachable(LogError, ServerUnreachable):
    """No Kafka broker answered at the bootstrap servers within the deadline."""

    def __init__(self, bootstrap_servers: str, reason: str) -> None:
        ServerUnreachable.__init__(self, "Kafka", bootstrap_servers, reason)
        self.retriable = True


@error_fields("{subject}: cannot {action} from status {from_status!r}")
class InvalidTransition(OrchestratorStateError):
    """A status change that the state machine does not allow."""

    subject: str
    from_status: str | None
    action: str
