-- Import jobs left pending or running by a process that stopped. Returns only identifiers, so a
-- replica can resume the jobs whose files it holds; reading the jobs themselves goes through RLS.
CREATE FUNCTION stale_import_jobs(stale_after interval) RETURNS TABLE (user_id uuid, job_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT j.user_id, j.job_id FROM import_jobs j
    WHERE j.state IN (1, 2) AND j.update_time < now() - stale_after
    ORDER BY j.update_time
    LIMIT 1000
$$;
DO $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION stale_import_jobs(interval) SET search_path = %I, pg_temp', current_schema());
END;
$$;
