-- Migration 0016 dropped the full blob-reference indexes of 0013 by name. A rebuild
-- swaps in copies of the tables whose indexes PostgreSQL named itself
-- (<table>_jsonb_path_query_array_idx), so on a database rebuilt between 0013 and 0016
-- the full index stayed beside the partial one, still evaluated on every archive
-- insert (the cost 0016 removed). Drop every full (non-partial) blob-reference index of
-- the archives, whatever its name; the partial ones (0016's) stay.
DO $$
DECLARE
    found record;
BEGIN
    FOR found IN
        SELECT n.nspname, c.relname FROM pg_index AS x
        JOIN pg_class AS c ON c.oid = x.indexrelid
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE x.indrelid IN (to_regclass('execution_events'), to_regclass('shared_events'))
          AND x.indpred IS NULL
          AND pg_get_indexdef(x.indexrelid) LIKE '%jsonb_path_query_array%"$blob"%'
    LOOP
        EXECUTE format('DROP INDEX %I.%I', found.nspname, found.relname);
    END LOOP;
END
$$;
