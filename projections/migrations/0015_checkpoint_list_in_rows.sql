-- An execution's checkpoint list lived in pipeline_states.checkpoints (jsonb), and a
-- pipeline row is rewritten in every batch that touches its execution: a long run's
-- growing list (TOASTed past ~2 KB) was rewritten with it, each time leaving its old
-- TOAST chunks dead (bench compare's storage_growth: 10 MB of pipeline_states for one
-- execution's 1,000 checkpoints; migration 0014 only vacuumed them sooner). The list
-- is now the live rows of the checkpoints table (one row per CheckpointSaved, written
-- once): deleted_at marks the ones a CheckpointsDeleted withdrew, and the column goes.

ALTER TABLE {checkpoints} ADD COLUMN IF NOT EXISTS deleted_at timestamptz;

-- Rows no longer listed by their execution were withdrawn: when, the archive says (the
-- CheckpointsDeleted that named them), else the execution's last change.
UPDATE {checkpoints} AS c
SET deleted_at = coalesce(
    (SELECT min(e.occurred_at) FROM execution_events AS e
     WHERE e.execution_id = c.execution_id AND e.event_type = 'CheckpointsDeleted'
       AND e.outcome = 'applied' AND e.sequence > c.sequence
       AND e.payload -> 'checkpoint_ids' ? c.checkpoint_id),
    p.updated_at, c.created_at)
FROM {pipeline_states} AS p
WHERE p.execution_id = c.execution_id
  AND NOT p.checkpoints @> jsonb_build_array(jsonb_build_object('checkpoint_id', c.checkpoint_id));

ALTER TABLE {pipeline_states} DROP COLUMN checkpoints;
ALTER TABLE {pipeline_states} RESET (
    toast.autovacuum_vacuum_scale_factor,
    toast.autovacuum_vacuum_threshold
);

-- The processor's row types (migration 0004) follow the columns.
ALTER TYPE orchestrator_pipeline_row DROP ATTRIBUTE checkpoints;
ALTER TYPE orchestrator_checkpoint_row ADD ATTRIBUTE deleted_at timestamptz;
