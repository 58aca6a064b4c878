-- The W3C traceparent of the last traced write applied to each execution (tracing on:
-- see orchestrator.events.tracing); the query API returns it as a response header.
-- A table of its own: the read models' columns stay as they are, and with tracing off
-- nothing is written here.
CREATE TABLE IF NOT EXISTS execution_traces (
    execution_id text PRIMARY KEY,
    traceparent  text NOT NULL,
    sequence     bigint,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
