"""The bottom layer: event catalogue, envelope, Avro codec, the Kafka log, the pure fold.

Everything above (commands, projections, snapshots, orchestrator) imports from here;
this package imports nothing of ours.
"""

from orchestrator.events._kafka import why_unreachable as why_kafka_unreachable
from orchestrator.events.catalogue import PAYLOAD_TYPES, Payload
from orchestrator.events.codec import EventCodec, default_codec
from orchestrator.events.compression import ALGORITHMS as COMPRESSION_ALGORITHMS
from orchestrator.events.compression import Algorithm as CompressionAlgorithm
from orchestrator.events.compression import (
    CompressionError,
    Compressor,
    check_level,
    decompress,
    inspect,
    pack,
    unpack,
)
from orchestrator.events.consumer import (
    ConsumerSettings,
    DecodedRecord,
    EventConsumer,
    RawRecord,
    RebalanceListener,
    TopicPartition,
    decode_records,
)
from orchestrator.events.crypto import DataKeySource, Sealer, UserDataErased
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
from orchestrator.events.keys import KeyConfigError, KeyRing
from orchestrator.events.lifetime import record_lifetime_ms, user_data_topics
from orchestrator.events.log import EventLog, ProducerSettings
from orchestrator.events.machines import PIPELINE_MACHINE, TASK_MACHINE, Machine
from orchestrator.events.memory import MemoryEventLog, MemoryRecord
from orchestrator.events.resource import Resource, cancel_and_wait
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
from orchestrator.events.upcast import (
    UpcasterRegistry,
    default_upcasters,
    register_upcaster,
    upcaster,
    user_state_upcaster,
)
from orchestrator.events.userdata import (
    BlobRef,
    BlobStore,
    UserData,
    decode_user_data,
    encode_user_data,
)

__all__ = [
    "COMPRESSION_ALGORITHMS",
    "DEFAULT_PIPELINE_TOPIC",
    "DEFAULT_SHARED_TOPIC",
    "PAYLOAD_TYPES",
    "PIPELINE_MACHINE",
    "TASK_MACHINE",
    "BlobRef",
    "BlobStore",
    "CheckpointRef",
    "CompressionAlgorithm",
    "CompressionError",
    "Compressor",
    "ConsumerSettings",
    "DataKeySource",
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
    "KeyConfigError",
    "KeyRing",
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
    "Resource",
    "Sealer",
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
    "UpcasterRegistry",
    "UserData",
    "UserDataErased",
    "UserDataError",
    "apply",
    "cancel_and_wait",
    "check_level",
    "decode_records",
    "decode_user_data",
    "decompress",
    "default_codec",
    "default_upcasters",
    "describe_topics",
    "dlq_name",
    "effective_spec",
    "encode_user_data",
    "ensure_topics",
    "ensure_topics_report",
    "fold",
    "inspect",
    "pack",
    "record_lifetime_ms",
    "register_upcaster",
    "step",
    "step_shared",
    "unpack",
    "upcaster",
    "user_data_topics",
    "user_state_upcaster",
    "why_kafka_unreachable",
]
