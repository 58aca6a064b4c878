-- A pipeline_states row is rewritten in every batch that touches its execution, and its
-- checkpoints list (TOASTed once it passes ~2 KB) is rewritten with it: each rewrite
-- leaves the old TOAST chunks dead. With the default thresholds (20% of the TOAST
-- table) autovacuum reclaims them late, so a long run's few rows grew the table to
-- ~7 MB for one execution's 1,000 checkpoints (bench compare's storage_growth). Vacuum
-- the TOAST table once a few hundred chunks are dead, so the space is reused.
ALTER TABLE {pipeline_states} SET (
    toast.autovacuum_vacuum_scale_factor = 0,
    toast.autovacuum_vacuum_threshold = 500
);
