-- Since 0015 an execution's checkpoint list is its live checkpoints rows by sequence, but
-- the rows were keyed by checkpoint_id alone, so two lists the fold can hold had no rows:
-- an id saved twice while still listed (the fold lists both saves; the one row held the
-- last), and an id that two executions saved (a hand-given id: the row stayed the first
-- execution's, and the other listed nothing for it). A row is now one applied
-- CheckpointSaved, keyed by (execution_id, sequence) like the event itself; a withdrawal
-- sets deleted_at on the rows of the saves it took off the list.

-- The key first: the missing rows below would collide on the old one. No two rows share
-- (execution_id, sequence): each was one save, and a sequence is one event.
DO $$
DECLARE
    pk text;
BEGIN
    SELECT conname INTO pk FROM pg_constraint
    WHERE conrelid = '{checkpoints}'::regclass AND contype = 'p';
    IF pk IS NOT NULL THEN
        EXECUTE format('ALTER TABLE {checkpoints} DROP CONSTRAINT %I', pk);
    END IF;
END
$$;
ALTER TABLE {checkpoints} ADD PRIMARY KEY (execution_id, sequence);

-- The index 0001 made on (execution_id, sequence) is now the key's; drop it whatever a
-- rebuild named it. checkpoint.restore and the history service find a row by its id.
DO $$
DECLARE
    found record;
BEGIN
    FOR found IN
        SELECT n.nspname, c.relname FROM pg_index AS x
        JOIN pg_class AS c ON c.oid = x.indexrelid
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE x.indrelid = '{checkpoints}'::regclass AND NOT x.indisprimary
          AND x.indpred IS NULL AND x.indexprs IS NULL
          AND x.indkey::text = (SELECT k.indkey::text FROM pg_index AS k
                                WHERE k.indrelid = '{checkpoints}'::regclass AND k.indisprimary)
    LOOP
        EXECUTE format('DROP INDEX %I.%I', found.nspname, found.relname);
    END LOOP;
END
$$;
CREATE INDEX IF NOT EXISTS {checkpoints_name}_checkpoint_id ON {checkpoints} (checkpoint_id);

-- A row for every applied save the archive holds and the rows lack (the earlier save of
-- an id saved again, another execution's save of a reused id), withdrawn when the first
-- applied CheckpointsDeleted after it in its execution named it (the fold's rule), as 0015
-- marked the others. Set-based: the withdrawals expanded once, then joined.
WITH withdrawn AS MATERIALIZED (
    SELECT e.execution_id, gone.checkpoint_id, e.sequence, e.occurred_at
    FROM execution_events AS e
    CROSS JOIN LATERAL jsonb_array_elements_text(e.payload -> 'checkpoint_ids') AS gone(checkpoint_id)
    WHERE e.event_type = 'CheckpointsDeleted' AND e.outcome = 'applied'
), missing AS (
    SELECT e.execution_id, p.pipeline_id, e.sequence, e.occurred_at, e.payload,
           e.payload ->> 'checkpoint_id' AS checkpoint_id
    FROM execution_events AS e
    JOIN {pipeline_states} AS p ON p.execution_id = e.execution_id
    WHERE e.event_type = 'CheckpointSaved' AND e.outcome = 'applied'
      AND e.sequence IS NOT NULL
      AND NOT EXISTS (
        SELECT 1 FROM {checkpoints} AS c
        WHERE c.execution_id = e.execution_id AND c.sequence = e.sequence)
)
INSERT INTO {checkpoints} AS c (
    checkpoint_id, execution_id, pipeline_id, name, task_id, sequence, progress, data,
    metadata, created_at, deleted_at)
SELECT m.checkpoint_id, m.execution_id, m.pipeline_id, m.payload ->> 'name',
       m.payload ->> 'task_id', m.sequence, (m.payload ->> 'progress')::double precision,
       NULL, nullif(m.payload -> 'metadata', 'null'::jsonb), m.occurred_at,
       min(w.occurred_at)
FROM missing AS m
LEFT JOIN withdrawn AS w ON w.execution_id = m.execution_id
    AND w.checkpoint_id = m.checkpoint_id AND w.sequence > m.sequence
GROUP BY m.execution_id, m.sequence, m.checkpoint_id, m.pipeline_id, m.occurred_at, m.payload
ON CONFLICT (execution_id, sequence) DO NOTHING;
