-- A checkpoint withdrawn and then saved again under the same id: the fold lists it as
-- its last save (name, task, progress, sequence: its place in the list), but its
-- checkpoints row kept the first save (up to 0014 the row was inserted once, ON CONFLICT
-- DO NOTHING, and the list in pipeline_states said the rest; 0015 dropped that list and
-- the processor, until this fix, only cleared deleted_at). Since 0015 the live rows by
-- sequence ARE the list, so each row takes its execution's last applied save of that id
-- from the archive. Rows with no later save in the archive are untouched (a new
-- migration rather than a change to 0015, which databases have already applied).

UPDATE {checkpoints} AS c
SET name = s.payload ->> 'name',
    task_id = s.payload ->> 'task_id',
    sequence = s.sequence,
    progress = (s.payload ->> 'progress')::double precision,
    data = NULL,
    metadata = nullif(s.payload -> 'metadata', 'null'::jsonb),
    created_at = s.occurred_at
FROM (
    SELECT DISTINCT ON (e.execution_id, e.payload ->> 'checkpoint_id')
        e.execution_id, e.payload ->> 'checkpoint_id' AS checkpoint_id, e.sequence,
        e.occurred_at, e.payload
    FROM execution_events AS e
    WHERE e.event_type = 'CheckpointSaved' AND e.outcome = 'applied'
    ORDER BY e.execution_id, e.payload ->> 'checkpoint_id', e.sequence DESC
) AS s
WHERE s.execution_id = c.execution_id AND s.checkpoint_id = c.checkpoint_id
  AND s.sequence > c.sequence;
