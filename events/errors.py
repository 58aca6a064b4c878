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

Upper layers add their own subtrees under ``OrchestratorStateError``.
"""

from __future__ import annotations


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


class OrchestratorStateError(Exception):
    """Root of every error raised by this product."""

    retriable: bool = False


class EventsError(OrchestratorStateError):
    """An error in the event catalogue, codec or log."""


class InvalidEvent(EventsError):
    """An event whose payload does not fit its schema; raised before anything is sent."""

    def __init__(self, event_type: str, field: str, reason: str) -> None:
        self.event_type = event_type
        self.field = field
        self.reason = reason
        super().__init__(f"invalid {event_type}: field {field!r}: {reason}")


class DecodeError(EventsError):
    """Bytes read from the log that are not a decodable event."""

    def __init__(
        self,
        reason: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset
        super().__init__(f"cannot decode event{where(topic, partition, offset)}: {reason}")

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


class ServerUnreachable(OrchestratorStateError):
    """A server could not be reached (or refused us) within the deadline."""

    retriable = True

    def __init__(self, server: str, address: str, reason: str) -> None:
        self.server = server
        self.address = address
        self.reason = reason
        super().__init__(f"cannot reach {server} at {address}: {reason}")


class KafkaUnreachable(LogError, ServerUnreachable):
    """No Kafka broker answered at the bootstrap servers within the deadline."""

    def __init__(self, bootstrap_servers: str, reason: str) -> None:
        self.server = "Kafka"
        self.address = bootstrap_servers
        self.reason = reason
        self.retriable = True
        Exception.__init__(self, f"cannot reach Kafka at {bootstrap_servers}: {reason}")


class InvalidTransition(OrchestratorStateError):
    """A status change that the state machine does not allow."""

    def __init__(self, subject: str, from_status: str | None, action: str) -> None:
        self.subject = subject
        self.from_status = from_status
        self.action = action
        super().__init__(f"{subject}: cannot {action} from status {from_status!r}")
