-- What the processor runtime needs beyond 0001 (design §4).

-- The fold lists tasks in declaration order (completed_tasks, pending_tasks), so the
-- state read back from task_states must keep that order.
ALTER TABLE {task_states} ADD COLUMN IF NOT EXISTS ordinal integer NOT NULL DEFAULT 0;

-- Why the fold dropped or refused an event (duplicate, stale epoch, rejected).
ALTER TABLE execution_events ADD COLUMN IF NOT EXISTS reason text;

-- Shared-state events have no execution: their archive, with the fold's verdict.
CREATE TABLE IF NOT EXISTS shared_events (
    topic        text NOT NULL,
    partition    integer NOT NULL,
    "offset"     bigint NOT NULL,
    namespace    text NOT NULL,
    name         text NOT NULL,
    version      bigint NOT NULL,
    event_id     text NOT NULL,
    event_type   text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    outcome      text NOT NULL,
    reason       text,
    payload      jsonb NOT NULL,
    raw          bytea NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX IF NOT EXISTS shared_events_namespace ON shared_events (namespace, name, version);

-- Fencing token of the offsets: a processor writes only while (next_offset,
-- generation) is what it last saw; a rebuild swap bumps the generation so that every
-- processor drops its cached states and re-reads the swapped-in tables.
ALTER TABLE projection_offsets ADD COLUMN IF NOT EXISTS generation bigint NOT NULL DEFAULT 0;
