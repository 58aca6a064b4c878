"""The read side: processors folding the log into PostgreSQL read models.

``run_processor(ProjectionSettings(...), dsn, bootstrap)`` runs one consumer-group
member (``Projector``); ``wait_for_position`` gives read-your-writes on an append's
position; ``rebuild`` replays a projection into fresh tables and swaps them in; dead
letters are listed and replayed with ``list_dead_letters`` / ``replay_dead_letter``.
The row <-> state mapping is ``projections.readmodel``; the query API is
``projections.api``. A read model is one :class:`Projection` declaration (tables,
fold, migrations; ``projections.projection``) passed to :func:`register`; the seed's
is :data:`EXECUTIONS`, and ``ProjectionSettings.read_model`` names the one to fold.
"""

from typing import TYPE_CHECKING

from orchestrator.events import lazy_exports
from orchestrator.projections.archive import PostgresEventArchive
from orchestrator.projections.audit import ReadModelAudit
from orchestrator.projections.blobrefs import add_kept as add_kept_blobs
from orchestrator.projections.blobrefs import close_kept as close_kept_blobs
from orchestrator.projections.blobrefs import open_kept as open_kept_blobs
from orchestrator.projections.blobrefs import referenced as referenced_blobs
from orchestrator.projections.bulk import copy_rows, row_count
from orchestrator.projections.checkpointdata import checkpoint_chains
from orchestrator.projections.checkpointdata import plain_value as checkpoint_plain_value
from orchestrator.projections.datakeys import EraseResult, PostgresDataKeys
from orchestrator.projections.deadletters import (
    DeadLetterRow,
    list_dead_letters,
    replay_dead_letter,
)
from orchestrator.projections.errors import (
    DeadLetterNotFound,
    ProcessorFailed,
    ProjectionError,
    RebuildError,
    is_outage,
)
from orchestrator.projections.executions import EXECUTIONS
from orchestrator.projections.export import (
    ReadModelExport,
    last_sequences,
    restore_data_keys,
    tables_holding_rows,
)
from orchestrator.projections.indexes import (
    DEFAULT_INDEXES,
    IndexConfigError,
    IndexState,
    ensure_indexes,
    index_status,
)
from orchestrator.projections.migrator import (
    MigrationStatus,
    TableNames,
    migrate,
    migration_status,
)
from orchestrator.projections.offsets import Fence, PostgresOffsets
from orchestrator.projections.pools import CONNECT_DEADLINE_S, close_pool, dsn_address, open_pool
from orchestrator.projections.positions import applied_offset, wait_for_position
from orchestrator.projections.processor import Projector, prepare, run_processor
from orchestrator.projections.projection import (
    Folded,
    Projection,
    ReadModelFold,
    Table,
    projection_of,
    register,
    registered,
    unregister,
)
from orchestrator.projections.queries import (
    CheckpointQuery,
    CheckpointRow,
    OffsetRow,
    ReadModelQueries,
    stored_offsets,
)
from orchestrator.projections.readmodel import (
    EVENT_COLUMNS,
    PIPELINE_COLUMNS,
    TASK_COLUMNS,
    Row,
    dumps,
    execution_from_rows,
    live_checkpoints,
    payload_json,
    pipeline_row,
    task_row,
    task_rows,
)
from orchestrator.projections.rebuilder import (
    SWAPPED_CHANNEL,
    Rebuilder,
    RebuildProgress,
    RebuildReport,
    rebuild,
)
from orchestrator.projections.recovery import RecoveryReads
from orchestrator.projections.retention import (
    Finished,
    Retired,
    finished_before,
    retire_executions,
)
from orchestrator.projections.settings import ProjectionSettings, ReadModelTables
from orchestrator.projections.store import (
    OFFSETS_CHANNEL,
    SHARED_CHANGES_CHANNEL,
    STATE_CHANGES_CHANNEL,
    ReadModelStore,
    parse_changes,
)

if TYPE_CHECKING:
    from orchestrator.projections.api import ApiSettings, create_app
    from orchestrator.projections.api._queries import ExecutionFilter, Queries
    from orchestrator.projections.api.models import CheckpointList as CheckpointList
    from orchestrator.projections.api.models import EventPage as EventPage
    from orchestrator.projections.api.models import ExecutionOut as ExecutionOut
    from orchestrator.projections.api.models import ExecutionPage as ExecutionPage
    from orchestrator.projections.api.models import HealthOut as HealthOut
    from orchestrator.projections.api.models import NamespaceOut as NamespaceOut
    from orchestrator.projections.api.models import TaskList as TaskList
    from orchestrator.projections.api.routes_timeline import HistoryStateSource, set_state_source
    from orchestrator.projections.redisprojector import (
        REDIS_GROUP_SUFFIX,
        RedisProjector,
        postgres_fallback,
        run_redis_processor,
    )
    from orchestrator.projections.redisstore import (
        RedisClient,
        RedisKeys,
        RedisReadModelStore,
        is_redis_outage,
        redis_client,
    )

# The query API (FastAPI) and the Redis read model load on first use: a worker or a
# resumed run's process that uses neither starts ~1-2 s sooner without them.
__getattr__ = lazy_exports(
    __name__,
    {
        "ApiSettings": ".api",
        "create_app": ".api",
        "ExecutionFilter": ".api._queries",
        "Queries": ".api._queries",
        "CheckpointList": ".api.models",
        "EventPage": ".api.models",
        "ExecutionOut": ".api.models",
        "ExecutionPage": ".api.models",
        "HealthOut": ".api.models",
        "NamespaceOut": ".api.models",
        "TaskList": ".api.models",
        "HistoryStateSource": ".api.routes_timeline",
        "set_state_source": ".api.routes_timeline",
        "REDIS_GROUP_SUFFIX": ".redisprojector",
        "RedisProjector": ".redisprojector",
        "postgres_fallback": ".redisprojector",
        "run_redis_processor": ".redisprojector",
        "RedisClient": ".redisstore",
        "RedisKeys": ".redisstore",
        "RedisReadModelStore": ".redisstore",
        "is_redis_outage": ".redisstore",
        "redis_client": ".redisstore",
    },
)

__all__ = [
    "CONNECT_DEADLINE_S",
    "DEFAULT_INDEXES",
    "EVENT_COLUMNS",
    "EXECUTIONS",
    "OFFSETS_CHANNEL",
    "PIPELINE_COLUMNS",
    "REDIS_GROUP_SUFFIX",
    "SHARED_CHANGES_CHANNEL",
    "STATE_CHANGES_CHANNEL",
    "SWAPPED_CHANNEL",
    "TASK_COLUMNS",
    "ApiSettings",
    "CheckpointList",
    "CheckpointQuery",
    "CheckpointRow",
    "DeadLetterNotFound",
    "DeadLetterRow",
    "EraseResult",
    "EventPage",
    "ExecutionFilter",
    "ExecutionOut",
    "ExecutionPage",
    "Fence",
    "Finished",
    "Folded",
    "HealthOut",
    "HistoryStateSource",
    "IndexConfigError",
    "IndexState",
    "MigrationStatus",
    "NamespaceOut",
    "OffsetRow",
    "PostgresDataKeys",
    "PostgresEventArchive",
    "PostgresOffsets",
    "ProcessorFailed",
    "Projection",
    "ProjectionError",
    "ProjectionSettings",
    "Projector",
    "Queries",
    "ReadModelAudit",
    "ReadModelExport",
    "ReadModelFold",
    "ReadModelQueries",
    "ReadModelStore",
    "ReadModelTables",
    "RebuildError",
    "RebuildProgress",
    "RebuildReport",
    "Rebuilder",
    "RecoveryReads",
    "RedisClient",
    "RedisKeys",
    "RedisProjector",
    "RedisReadModelStore",
    "Retired",
    "Row",
    "Table",
    "TableNames",
    "TaskList",
    "add_kept_blobs",
    "applied_offset",
    "checkpoint_chains",
    "checkpoint_plain_value",
    "close_kept_blobs",
    "close_pool",
    "copy_rows",
    "create_app",
    "dsn_address",
    "dumps",
    "ensure_indexes",
    "execution_from_rows",
    "finished_before",
    "index_status",
    "is_outage",
    "is_redis_outage",
    "last_sequences",
    "list_dead_letters",
    "live_checkpoints",
    "migrate",
    "migration_status",
    "open_kept_blobs",
    "open_pool",
    "parse_changes",
    "payload_json",
    "pipeline_row",
    "postgres_fallback",
    "prepare",
    "projection_of",
    "rebuild",
    "redis_client",
    "referenced_blobs",
    "register",
    "registered",
    "replay_dead_letter",
    "restore_data_keys",
    "retire_executions",
    "row_count",
    "run_processor",
    "run_redis_processor",
    "set_state_source",
    "stored_offsets",
    "tables_holding_rows",
    "task_row",
    "task_rows",
    "unregister",
    "wait_for_position",
]
