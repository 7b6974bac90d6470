-- The owner policies read the user id once per statement instead of once per row: as a scalar
-- subquery the setting becomes an InitPlan, evaluated before the rows are, so a bulk insert no
-- longer calls current_setting for every row it checks. The condition itself is unchanged.
DO $$
DECLARE
    table_name text;
BEGIN
    FOREACH table_name IN ARRAY ARRAY['sources', 'devices', 'source_priorities', 'samples', 'records', 'import_jobs']
    LOOP
        EXECUTE format(
            'ALTER POLICY %I ON %I '
            'USING (user_id = (SELECT NULLIF(current_setting(''app.current_user_id'', true), '''')::uuid)) '
            'WITH CHECK (user_id = (SELECT NULLIF(current_setting(''app.current_user_id'', true), '''')::uuid))',
            table_name || '_owner', table_name);
    END LOOP;
END;
$$;
