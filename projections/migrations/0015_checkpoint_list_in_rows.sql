-- An execution's checkpoint list lived in pipeline_states.checkpoints (jsonb), and a
-- pipeline row is rewritten in every batch that touches its execution: a long run's
-- growing list (TOASTed past ~2 KB) was rewritten with it, each time leaving its old
-- TOAST chunks dead (bench compare's storage_growth: 10 MB of pipeline_states for one
-- execution's 1,000 checkpoints; migration 0014 only vacuumed them sooner). The list
-- is now the live rows of the checkpoints table (one row per CheckpointSaved, written
-- once): deleted_at marks the ones a CheckpointsDeleted withdrew, and the column goes.

ALTER TABLE {checkpoints} ADD COLUMN IF NOT EXISTS deleted_at timestamptz;

-- Rows no longer listed by their execution were withdrawn: when, the archive says (the
-- first applied CheckpointsDeleted after the save that named them), else the
-- execution's last change. Set-based (the lists and the withdrawals each expanded once,
-- then joined): a per-row containment test over the execution's TOASTed list was
-- quadratic (26 s for one execution of 9,000 checkpoints) while this migration holds
-- ACCESS EXCLUSIVE locks on checkpoints and pipeline_states.
WITH listed AS (
    SELECT p.execution_id, ref ->> 'checkpoint_id' AS checkpoint_id
    FROM {pipeline_states} AS p CROSS JOIN LATERAL jsonb_array_elements(p.checkpoints) AS ref
), withdrawn AS (
    SELECT e.execution_id, gone.checkpoint_id, e.sequence, e.occurred_at
    FROM execution_events AS e
    CROSS JOIN LATERAL jsonb_array_elements_text(e.payload -> 'checkpoint_ids') AS gone(checkpoint_id)
    WHERE e.event_type = 'CheckpointsDeleted' AND e.outcome = 'applied'
), unlisted AS (
    SELECT c.checkpoint_id, coalesce(min(w.occurred_at), p.updated_at, c.created_at) AS at
    FROM {checkpoints} AS c
    JOIN {pipeline_states} AS p ON p.execution_id = c.execution_id
    LEFT JOIN withdrawn AS w ON w.execution_id = c.execution_id
        AND w.checkpoint_id = c.checkpoint_id AND w.sequence > c.sequence
    WHERE NOT EXISTS (
        SELECT 1 FROM listed AS l
        WHERE l.execution_id = c.execution_id AND l.checkpoint_id = c.checkpoint_id)
    GROUP BY c.checkpoint_id, p.updated_at, c.created_at
)
UPDATE {checkpoints} AS c SET deleted_at = u.at
FROM unlisted AS u WHERE u.checkpoint_id = c.checkpoint_id;

ALTER TABLE {pipeline_states} DROP COLUMN checkpoints;
ALTER TABLE {pipeline_states} RESET (
    toast.autovacuum_vacuum_scale_factor,
    toast.autovacuum_vacuum_threshold
);

-- The processor's row types (migration 0004) follow the columns.
ALTER TYPE orchestrator_pipeline_row DROP ATTRIBUTE checkpoints;
ALTER TYPE orchestrator_checkpoint_row ADD ATTRIBUTE deleted_at timestamptz;
