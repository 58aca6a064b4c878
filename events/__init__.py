"""The bottom layer: event catalogue, envelope, Avro codec, the Kafka log, the pure fold.

Everything above (commands, projections, snapshots, orchestrator) imports from here;
this package imports nothing of ours.
"""

from events.catalogue import PAYLOAD_TYPES, Payload
from events.codec import EventCodec, default_codec
from events.consumer import (
    ConsumerSettings,
    DecodedRecord,
    EventConsumer,
    RawRecord,
    RebalanceListener,
    TopicPartition,
    decode_records,
)
from events.envelope import Envelope, Position
from events.errors import (
    DecodeError,
    EventsError,
    InvalidEvent,
    InvalidTransition,
    LogError,
    OrchestratorStateError,
    UserDataError,
)
from events.fold import Outcome, Step, apply, fold, step, step_shared
from events.log import EventLog, ProducerSettings
from events.machines import PIPELINE_MACHINE, TASK_MACHINE, Machine
from events.state import CheckpointRef, ExecutionState, NamespaceState, SharedVariable, TaskState
from events.topics import (
    DEFAULT_PIPELINE_TOPIC,
    DEFAULT_SHARED_TOPIC,
    TopicMismatch,
    TopicsConfig,
    TopicSpec,
    dlq_name,
    ensure_topics,
)
from events.userdata import BlobRef, BlobStore, UserData, decode_user_data, encode_user_data

__all__ = [
    "DEFAULT_PIPELINE_TOPIC",
    "DEFAULT_SHARED_TOPIC",
    "PAYLOAD_TYPES",
    "PIPELINE_MACHINE",
    "TASK_MACHINE",
    "BlobRef",
    "BlobStore",
    "CheckpointRef",
    "ConsumerSettings",
    "DecodeError",
    "DecodedRecord",
    "Envelope",
    "EventCodec",
    "EventConsumer",
    "EventLog",
    "EventsError",
    "ExecutionState",
    "InvalidEvent",
    "InvalidTransition",
    "LogError",
    "Machine",
    "NamespaceState",
    "OrchestratorStateError",
    "Outcome",
    "Payload",
    "Position",
    "ProducerSettings",
    "RawRecord",
    "RebalanceListener",
    "SharedVariable",
    "Step",
    "TaskState",
    "TopicMismatch",
    "TopicPartition",
    "TopicSpec",
    "TopicsConfig",
    "UserData",
    "UserDataError",
    "apply",
    "decode_records",
    "decode_user_data",
    "default_codec",
    "dlq_name",
    "encode_user_data",
    "ensure_topics",
    "fold",
    "step",
    "step_shared",
]
