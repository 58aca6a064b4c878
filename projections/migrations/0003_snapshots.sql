-- The snapshot index (design §5): one row per snapshot object, written by the
-- snapshotter in the same transaction as its offsets. Restore finds the newest
-- snapshot at or before a target here; retention plans from it.
CREATE TABLE IF NOT EXISTS snapshots (
    execution_id   text NOT NULL,
    sequence       bigint NOT NULL,
    pipeline_id    text NOT NULL,
    epoch          bigint NOT NULL,
    status         text NOT NULL,
    object_key     text NOT NULL,
    store          text NOT NULL,
    topic          text NOT NULL,
    partition      integer NOT NULL,
    "offset"       bigint NOT NULL,
    size_bytes     bigint NOT NULL,
    raw_size_bytes bigint NOT NULL,
    created_at     timestamptz NOT NULL,
    occurred_at    timestamptz,
    PRIMARY KEY (execution_id, sequence)
);
CREATE INDEX IF NOT EXISTS snapshots_pipeline_id ON snapshots (pipeline_id);
CREATE INDEX IF NOT EXISTS snapshots_created_at ON snapshots (created_at);
CREATE INDEX IF NOT EXISTS snapshots_position ON snapshots (topic, partition, "offset");
