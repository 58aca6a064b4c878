-- Row types of the processor's upserts (projections/store.py): each batch sends
-- the rows of a table as ONE array of these, unnest()ed in the write statement.
-- Sent as one array per column instead, asyncpg checks every element against
-- collections.abc (about 30 ms of Python per 5,000-event batch); as rows, it checks
-- each row once. Attribute names, order and types are those of the *_COLUMNS
-- constants in projections/readmodel.py (tests/integration/test_migrations.py pins it):
-- change one, and add a migration that changes the other.

-- A pipeline_states row.
CREATE TYPE orchestrator_pipeline_row AS (
    execution_id       text,
    pipeline_id        text,
    status             text,
    epoch              bigint,
    owner              text,
    last_sequence      bigint,
    created_at         timestamptz,
    started_at         timestamptz,
    updated_at         timestamptz,
    completed_at       timestamptz,
    progress           float8,
    current_task       text,
    completed_tasks    jsonb,
    pending_tasks      jsonb,
    context            jsonb,
    checkpoints        jsonb,
    error              text,
    outputs            jsonb,
    forked_from        text,
    fork_sequence      bigint,
    root_execution_id  text,
    event_count        bigint,
    last_topic         text,
    last_partition     int4,
    last_offset        bigint
);

-- A task_states row.
CREATE TYPE orchestrator_task_row AS (
    execution_id         text,
    task_id              text,
    pipeline_id          text,
    ordinal              int4,
    status               text,
    attempts             int4,
    depends_on           jsonb,
    started_at           timestamptz,
    completed_at         timestamptz,
    inputs               jsonb,
    outputs              jsonb,
    metadata             jsonb,
    execution_details    jsonb,
    error                text,
    retryable            bool,
    retry_delay_seconds  float8,
    created_at           timestamptz,
    updated_at           timestamptz
);

-- A checkpoints row.
CREATE TYPE orchestrator_checkpoint_row AS (
    checkpoint_id  text,
    execution_id   text,
    pipeline_id    text,
    name           text,
    task_id        text,
    sequence       bigint,
    progress       float8,
    data           jsonb,
    metadata       jsonb,
    created_at     timestamptz
);

-- A shared_variables row.
CREATE TYPE orchestrator_shared_variable_row AS (
    namespace   text,
    name        text,
    type        text,
    value       jsonb,
    immutable   bool,
    updated_by  text,
    updated_at  timestamptz,
    version     bigint,
    deleted     bool
);
