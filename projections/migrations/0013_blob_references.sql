-- Blob retention asks "which of these blobs does anything still reference?" for a page
-- of stored blobs at a time. A claim-checked value is stored in JSON as the marker
-- {"$blob": {"uri", "sha256", "size", "encoding"}}, anywhere in a payload: these
-- indexes hold every marker's sha256 per row, so the question is an index lookup
-- (`... ?| digests`), not a scan of the archive.
CREATE INDEX IF NOT EXISTS execution_events_blob_sha256 ON execution_events
    USING gin ((jsonb_path_query_array(payload, 'strict $.**."$blob".sha256')));
CREATE INDEX IF NOT EXISTS shared_events_blob_sha256 ON shared_events
    USING gin ((jsonb_path_query_array(payload, 'strict $.**."$blob".sha256')));
CREATE INDEX IF NOT EXISTS shared_variables_blob_sha256 ON shared_variables
    USING gin ((jsonb_path_query_array(value, 'strict $.**."$blob".sha256')));
