-- Per-execution (and per-namespace) data keys for user-data encryption, each wrapped by
-- a master key of the key ring (ORCHESTRATOR_SNAPSHOT_KEYS), named by master_key_id.
-- Erasing a scope deletes its wrapped key and keeps the row as a tombstone (erased_at),
-- so reads answer "erased" rather than "unknown" (crypto-shredding: every copy of the
-- data, in Kafka, the read models, snapshots and blobs, is unreadable at once).
CREATE TABLE IF NOT EXISTS data_keys (
    scope         text PRIMARY KEY,
    master_key_id text,
    wrapped_key   bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    erased_at     timestamptz,
    CHECK ((erased_at IS NULL) = (wrapped_key IS NOT NULL))
);
