-- Read models of the event log (design §4). Table names in {braces} come from the
-- seed's PostgreSQL `schema` block (defaults: public.pipeline_states, ...).

CREATE TABLE IF NOT EXISTS {pipeline_states} (
    execution_id      text PRIMARY KEY,
    pipeline_id       text NOT NULL,
    status            text NOT NULL,
    epoch             bigint NOT NULL,
    owner             text,
    last_sequence     bigint NOT NULL,
    created_at        timestamptz,
    started_at        timestamptz,
    updated_at        timestamptz,
    completed_at      timestamptz,
    progress          double precision NOT NULL DEFAULT 0,
    current_task      text,
    completed_tasks   jsonb NOT NULL DEFAULT '[]',
    pending_tasks     jsonb NOT NULL DEFAULT '[]',
    context           jsonb NOT NULL DEFAULT '{}',
    checkpoints       jsonb NOT NULL DEFAULT '[]',
    error             text,
    outputs           jsonb,
    forked_from       text,
    fork_sequence     bigint,
    root_execution_id text,
    event_count       bigint NOT NULL DEFAULT 0,
    last_topic        text,
    last_partition    integer,
    last_offset       bigint
);
CREATE INDEX IF NOT EXISTS {pipeline_states_name}_pipeline_id ON {pipeline_states} (pipeline_id);
CREATE INDEX IF NOT EXISTS {pipeline_states_name}_status ON {pipeline_states} (status);
CREATE INDEX IF NOT EXISTS {pipeline_states_name}_created_at ON {pipeline_states} (created_at, execution_id);

CREATE TABLE IF NOT EXISTS {task_states} (
    execution_id        text NOT NULL,
    task_id             text NOT NULL,
    pipeline_id         text NOT NULL,
    status              text NOT NULL,
    attempts            integer NOT NULL DEFAULT 0,
    depends_on          jsonb NOT NULL DEFAULT '[]',
    started_at          timestamptz,
    completed_at        timestamptz,
    inputs              jsonb,
    outputs             jsonb,
    metadata            jsonb,
    execution_details   jsonb NOT NULL DEFAULT '{}',
    error               text,
    retryable           boolean,
    retry_delay_seconds double precision,
    created_at          timestamptz,
    updated_at          timestamptz,
    PRIMARY KEY (execution_id, task_id)
);
CREATE INDEX IF NOT EXISTS {task_states_name}_pipeline_id ON {task_states} (pipeline_id);
CREATE INDEX IF NOT EXISTS {task_states_name}_status ON {task_states} (status);
CREATE INDEX IF NOT EXISTS {task_states_name}_created_at ON {task_states} (created_at);

CREATE TABLE IF NOT EXISTS {checkpoints} (
    checkpoint_id text PRIMARY KEY,
    execution_id  text NOT NULL,
    pipeline_id   text NOT NULL,
    name          text NOT NULL,
    task_id       text,
    sequence      bigint NOT NULL,
    progress      double precision,
    data          jsonb,
    metadata      jsonb,
    created_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS {checkpoints_name}_execution_id ON {checkpoints} (execution_id, sequence);
CREATE INDEX IF NOT EXISTS {checkpoints_name}_pipeline_id ON {checkpoints} (pipeline_id);
CREATE INDEX IF NOT EXISTS {checkpoints_name}_created_at ON {checkpoints} (created_at);

CREATE TABLE IF NOT EXISTS shared_variables (
    namespace  text NOT NULL,
    name       text NOT NULL,
    type       text NOT NULL,
    value      jsonb,
    immutable  boolean NOT NULL DEFAULT false,
    updated_by text,
    updated_at timestamptz,
    version    bigint NOT NULL,
    deleted    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (namespace, name)
);

-- Every event of every execution as the log holds it (duplicates and zombie writes
-- included, with the fold's verdict), so a fold over the archive equals a fold over
-- the log. `raw` is the Avro single-object encoding, exactly as read.
CREATE TABLE IF NOT EXISTS execution_events (
    topic        text NOT NULL,
    partition    integer NOT NULL,
    "offset"     bigint NOT NULL,
    execution_id text NOT NULL,
    pipeline_id  text,
    sequence     bigint,
    epoch        bigint NOT NULL,
    event_id     text NOT NULL,
    event_type   text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    outcome      text NOT NULL,
    payload      jsonb NOT NULL,
    raw          bytea NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX IF NOT EXISTS execution_events_execution_id ON execution_events (execution_id, partition, "offset");
CREATE INDEX IF NOT EXISTS execution_events_occurred_at ON execution_events (occurred_at);

CREATE TABLE IF NOT EXISTS dead_letters (
    id           bigserial PRIMARY KEY,
    projection   text NOT NULL,
    topic        text NOT NULL,
    partition    integer NOT NULL,
    "offset"     bigint NOT NULL,
    key          bytea,
    reason       text NOT NULL,
    error_class  text NOT NULL,
    execution_id text,
    event_type   text,
    raw          bytea NOT NULL,
    dlq_topic    text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    replayed_at  timestamptz,
    UNIQUE (projection, topic, partition, "offset")
);
CREATE INDEX IF NOT EXISTS dead_letters_created_at ON dead_letters (created_at);

CREATE TABLE IF NOT EXISTS projection_offsets (
    projection  text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
);

CREATE TABLE IF NOT EXISTS leases (
    name        text PRIMARY KEY,
    holder      text,
    epoch       bigint NOT NULL DEFAULT 0,
    acquired_at timestamptz,
    expires_at  timestamptz,
    ttl_seconds double precision  -- the TTL last granted; the seed's `locks` section shows it
);
