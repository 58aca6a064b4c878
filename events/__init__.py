"""The bottom layer: event catalogue, envelope, Avro codec, the Kafka log, the pure fold.

Everything above (commands, projections, snapshots, orchestrator) imports from here;
this package imports nothing of ours.
"""

from orchestrator.events._kafka import why_unreachable as why_kafka_unreachable
from orchestrator.events.catalogue import PAYLOAD_TYPES, Payload
from orchestrator.events.codec import EventCodec, default_codec
from orchestrator.events.consumer import (
    ConsumerSettings,
    DecodedRecord,
    EventConsumer,
    RawRecord,
    RebalanceListener,
    TopicPartition,
    decode_records,
)
from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.errors import (
    DecodeError,
    EventsError,
    InvalidEvent,
    InvalidTransition,
    KafkaUnreachable,
    LogError,
    OrchestratorStateError,
    ServerUnreachable,
    UserDataError,
)
from orchestrator.events.fold import Outcome, Step, apply, fold, step, step_shared
from orchestrator.events.log import EventLog, ProducerSettings
from orchestrator.events.machines import PIPELINE_MACHINE, TASK_MACHINE, Machine
from orchestrator.events.memory import MemoryEventLog, MemoryRecord
from orchestrator.events.security import KafkaSecurity, KafkaSecurityError
from orchestrator.events.state import (
    CheckpointRef,
    ExecutionState,
    NamespaceState,
    SharedVariable,
    TaskState,
)
from orchestrator.events.topics import (
    DEFAULT_PIPELINE_TOPIC,
    DEFAULT_SHARED_TOPIC,
    TopicMismatch,
    TopicProblem,
    TopicReport,
    TopicsConfig,
    TopicSpec,
    TopicState,
    describe_topics,
    dlq_name,
    effective_spec,
    ensure_topics,
    ensure_topics_report,
)
from orchestrator.events.userdata import (
    BlobRef,
    BlobStore,
    UserData,
    decode_user_data,
    encode_user_data,
)

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
    "KafkaSecurity",
    "KafkaSecurityError",
    "KafkaUnreachable",
    "LogError",
    "Machine",
    "MemoryEventLog",
    "MemoryRecord",
    "NamespaceState",
    "OrchestratorStateError",
    "Outcome",
    "Payload",
    "Position",
    "ProducerSettings",
    "RawRecord",
    "RebalanceListener",
    "ServerUnreachable",
    "SharedVariable",
    "Step",
    "TaskState",
    "TopicMismatch",
    "TopicPartition",
    "TopicProblem",
    "TopicReport",
    "TopicSpec",
    "TopicState",
    "TopicsConfig",
    "UserData",
    "UserDataError",
    "apply",
    "decode_records",
    "decode_user_data",
    "default_codec",
    "describe_topics",
    "dlq_name",
    "effective_spec",
    "encode_user_data",
    "ensure_topics",
    "ensure_topics_report",
    "fold",
    "step",
    "step_shared",
    "why_kafka_unreachable",
]
