"""The bottom layer: event catalogue, envelope, Avro codec, the Kafka log, the pure fold.

Everything above (commands, projections, snapshots, orchestrator) imports from here;
this package imports nothing of ours.
"""

from orchestrator.events._kafka import why_unreachable as why_kafka_unreachable
from orchestrator.events._slots import plain_slot_fields, slot_builder
from orchestrator.events.catalogue import (
    PAYLOAD_TYPES,
    SHARED_EVENT_TYPES,
    CheckpointRestored,
    CheckpointSaved,
    CheckpointsDeleted,
    CheckpointWritesSaved,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionContext,
    ExecutionCreated,
    ExecutionDetails,
    ExecutionFailed,
    ExecutionOwnershipTaken,
    ExecutionPaused,
    ExecutionResumed,
    ExecutionValidationFailed,
    ExecutionValidationStarted,
    ExecutionValidationSucceeded,
    Payload,
    SharedVariableDeleted,
    SharedVariableSet,
    TaskCompleted,
    TaskFailed,
    TaskRetryScheduled,
    TaskScheduled,
    TaskSkipped,
    TaskSpec,
    TaskStarted,
)
from orchestrator.events.checkpointdata import (
    BrokenChain,
    applied_checkpoints,
    chain_of,
    plain_chain_bytes,
)
from orchestrator.events.codec import HEADER_SIZE, EventCodec, codec_for, default_codec
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
    Decoder,
    EventConsumer,
    RawRecord,
    RebalanceListener,
    TopicPartition,
    decode_records,
)
from orchestrator.events.crypto import (
    SEALED_MARKER,
    DataKeySource,
    KeyLookup,
    Sealer,
    UserDataErased,
    is_sealed,
    marker_scope,
    namespace_scope,
    new_data_key,
    sealed_scope,
    unwrap_key,
    wrap_key,
)
from orchestrator.events.delta import MAX_BASE_BYTES, is_delta
from orchestrator.events.envelope import (
    Envelope,
    Position,
    merge_positions,
    parse_session,
    session_token,
    uuid4_hex,
)
from orchestrator.events.errors import (
    AtRecord,
    DecodeError,
    EventsError,
    InvalidEvent,
    InvalidTransition,
    KafkaUnreachable,
    LogError,
    OrchestratorStateError,
    ServerUnreachable,
    UserDataError,
    error_fields,
    where,
)
from orchestrator.events.fastjson import fast_dumps
from orchestrator.events.fields import field_values, from_fields
from orchestrator.events.files import replacing
from orchestrator.events.fold import Outcome, Step, apply, fold, step, step_shared
from orchestrator.events.group import (
    BatchHandler,
    Fenced,
    GroupMember,
    GroupProcess,
    MemberSettings,
)
from orchestrator.events.history import (
    ArchivedEvent,
    Base,
    Bound,
    EventArchive,
    History,
    HistoryStep,
    Located,
    LogPartitionUnknown,
    LogReader,
    MemoryEventArchive,
    NothingToRestore,
    Restored,
    SnapshotBases,
    Source,
    Target,
    UnknownCheckpoint,
    reading_log,
)
from orchestrator.events.keys import (
    ACTIVE_KEY_ENV,
    KEY_BYTES,
    KEYS_ENV,
    KeyConfigError,
    KeyRing,
    generate_key,
)
from orchestrator.events.lazy import lazy_exports
from orchestrator.events.lifetime import record_lifetime_ms, user_data_topics
from orchestrator.events.limits import DEFAULT_LIMITS, InputLimits
from orchestrator.events.log import EventCodecLike, EventLog, ProducerSettings
from orchestrator.events.machines import (
    ACTIVE_STATUSES,
    PIPELINE_MACHINE,
    TASK_MACHINE,
    Machine,
    Transition,
)
from orchestrator.events.memory import MemoryEventLog, MemoryRecord
from orchestrator.events.memory_dump import read_dump, write_dump
from orchestrator.events.metrics import (
    record_applied,
    record_cache_request,
    record_checkpoints_saved,
    record_decision,
    record_leader,
    record_lease_lost,
    record_operation,
    record_read_model,
    record_recovery,
    record_snapshots,
    render,
    select,
    start_cache,
    start_projection,
    start_recovery,
    start_snapshotter,
    timed,
    timed_async,
)
from orchestrator.events.metrics_server import MetricsAddress, MetricsServer, serve_or_warn
from orchestrator.events.outage import Outage, RepeatFilter, quiet_client_logs, ride_out
from orchestrator.events.resource import Resource, cancel_and_wait, stop_on_signals
from orchestrator.events.schemas import default_registry, rabin_fingerprint, schemas_root
from orchestrator.events.security import (
    KAFKA_SASL_MECHANISM,
    KAFKA_SASL_PASSWORD_FILE,
    KAFKA_SASL_USERNAME,
    KAFKA_SECURITY_PROTOCOL,
    PLAINTEXT,
    KafkaSecurity,
    KafkaSecurityError,
    SaslMechanism,
)
from orchestrator.events.simulate import HistoryWriter, interleave, simulate_execution
from orchestrator.events.state import (
    AppliedIds,
    CheckpointRef,
    ExecutionState,
    LazyIds,
    NamespaceState,
    SharedVariable,
    TaskState,
    state_dict,
)
from orchestrator.events.task_feed import feed_for
from orchestrator.events.topics import (
    DEFAULT_PIPELINE_TOPIC,
    DEFAULT_SHARED_TOPIC,
    FOREVER,
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
from orchestrator.events.tracing import (
    configure_from_env,
    context_of,
    enabled,
    span,
    traceparent_of,
    tracer,
)
from orchestrator.events.upcast import (
    UpcasterRegistry,
    default_upcasters,
    register_upcaster,
    upcaster,
    user_state_upcaster,
)
from orchestrator.events.userdata import (
    BLOB_MARKER,
    BLOB_URI_PATTERN,
    DEFAULT_CLAIM_CHECK_THRESHOLD,
    DEFAULT_COMPRESS_THRESHOLD,
    NOT_PLAIN,
    BlobRef,
    BlobStore,
    UserData,
    decode_user_data,
    encode_user_data,
    encode_user_data_delta,
    fetch_verified,
    json_bytes,
    parse_json,
    parsing_once,
    plain_json,
    resolve_blob_markers,
    user_data_bytes,
)

# One line per few names: the facade re-exports ~200 (a list of one per line would be
# half of this module).
# fmt: off
__all__ = [
    "ACTIVE_KEY_ENV", "ACTIVE_STATUSES", "BLOB_MARKER", "BLOB_URI_PATTERN",
    "COMPRESSION_ALGORITHMS", "DEFAULT_CLAIM_CHECK_THRESHOLD", "DEFAULT_COMPRESS_THRESHOLD",
    "DEFAULT_LIMITS", "DEFAULT_PIPELINE_TOPIC", "DEFAULT_SHARED_TOPIC", "FOREVER", "HEADER_SIZE",
    "KAFKA_SASL_MECHANISM", "KAFKA_SASL_PASSWORD_FILE", "KAFKA_SASL_USERNAME",
    "KAFKA_SECURITY_PROTOCOL", "KEYS_ENV", "KEY_BYTES", "MAX_BASE_BYTES", "NOT_PLAIN",
    "PAYLOAD_TYPES", "PIPELINE_MACHINE", "PLAINTEXT", "SEALED_MARKER", "SHARED_EVENT_TYPES",
    "TASK_MACHINE", "AppliedIds", "ArchivedEvent", "AtRecord", "Base", "BatchHandler", "BlobRef",
    "BlobStore", "Bound", "BrokenChain", "CheckpointRef", "CheckpointRestored", "CheckpointSaved",
    "CheckpointWritesSaved", "CheckpointsDeleted", "CompressionAlgorithm", "CompressionError",
    "Compressor", "ConsumerSettings", "DataKeySource", "DecodeError", "DecodedRecord", "Decoder",
    "Envelope", "EventArchive", "EventCodec", "EventCodecLike", "EventConsumer", "EventLog",
    "EventsError", "ExecutionCancelled", "ExecutionCompleted", "ExecutionContext",
    "ExecutionCreated", "ExecutionDetails", "ExecutionFailed", "ExecutionOwnershipTaken",
    "ExecutionPaused", "ExecutionResumed", "ExecutionState", "ExecutionValidationFailed",
    "ExecutionValidationStarted", "ExecutionValidationSucceeded", "Fenced", "GroupMember",
    "GroupProcess", "History", "HistoryStep", "HistoryWriter", "InputLimits", "InvalidEvent",
    "InvalidTransition", "KafkaSecurity", "KafkaSecurityError", "KafkaUnreachable",
    "KeyConfigError", "KeyLookup", "KeyRing", "LazyIds", "Located", "LogError",
    "LogPartitionUnknown", "LogReader", "Machine", "MemberSettings", "MemoryEventArchive",
    "MemoryEventLog", "MemoryRecord", "MetricsAddress", "MetricsServer", "NamespaceState",
    "NothingToRestore", "OrchestratorStateError", "Outage", "Outcome", "Payload", "Position",
    "ProducerSettings", "RawRecord", "RebalanceListener", "RepeatFilter", "Resource", "Restored",
    "SaslMechanism", "Sealer", "ServerUnreachable", "SharedVariable", "SharedVariableDeleted",
    "SharedVariableSet", "SnapshotBases", "Source", "Step", "Target", "TaskCompleted", "TaskFailed",
    "TaskRetryScheduled", "TaskScheduled", "TaskSkipped", "TaskSpec", "TaskStarted", "TaskState",
    "TopicMismatch", "TopicPartition", "TopicProblem", "TopicReport", "TopicSpec", "TopicState",
    "TopicsConfig", "Transition", "UnknownCheckpoint", "UpcasterRegistry", "UserData",
    "UserDataErased", "UserDataError", "applied_checkpoints", "apply", "cancel_and_wait",
    "chain_of", "check_level", "codec_for", "configure_from_env", "context_of", "decode_records",
    "decode_user_data", "decompress", "default_codec", "default_registry", "default_upcasters",
    "describe_topics", "dlq_name", "effective_spec", "enabled", "encode_user_data",
    "encode_user_data_delta", "ensure_topics", "ensure_topics_report", "error_fields",
    "fast_dumps", "feed_for",
    "fetch_verified", "field_values", "fold", "from_fields", "generate_key", "inspect",
    "interleave", "is_delta", "is_sealed", "json_bytes", "lazy_exports", "marker_scope",
    "merge_positions", "namespace_scope", "new_data_key", "pack", "parse_json", "parse_session",
    "parsing_once", "plain_chain_bytes", "plain_json", "plain_slot_fields", "quiet_client_logs",
    "rabin_fingerprint",
    "read_dump", "reading_log", "record_applied", "record_cache_request",
    "record_checkpoints_saved", "record_decision", "record_leader", "record_lease_lost",
    "record_lifetime_ms",
    "record_operation", "record_read_model", "record_recovery", "record_snapshots",
    "register_upcaster", "render", "replacing", "resolve_blob_markers", "ride_out", "schemas_root",
    "sealed_scope", "select", "serve_or_warn", "session_token", "simulate_execution",
    "slot_builder", "span",
    "start_cache", "start_projection", "start_recovery", "start_snapshotter", "state_dict", "step",
    "step_shared", "stop_on_signals", "timed", "timed_async", "traceparent_of", "tracer", "unpack",
    "unwrap_key", "upcaster", "user_data_bytes", "user_data_topics", "user_state_upcaster",
    "uuid4_hex", "where", "why_kafka_unreachable", "wrap_key", "write_dump",
]
# fmt: on
