-- Sources, devices and the user's source priority.
CREATE TABLE sources (
    user_id uuid NOT NULL,
    source_id text NOT NULL,
    display_name text NOT NULL,
    platform smallint NOT NULL,
    app_id text NOT NULL DEFAULT '',
    devices text[] NOT NULL DEFAULT '{}',
    metric_types smallint[] NOT NULL DEFAULT '{}',
    request_id text,
    version integer NOT NULL DEFAULT 1,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    last_write_time timestamptz,
    PRIMARY KEY (user_id, source_id)
);
CREATE UNIQUE INDEX sources_request ON sources (user_id, request_id) WHERE request_id IS NOT NULL;

CREATE TABLE devices (
    user_id uuid NOT NULL,
    device_id text NOT NULL,
    display_name text NOT NULL,
    device_type smallint NOT NULL,
    manufacturer text NOT NULL DEFAULT '',
    model text NOT NULL DEFAULT '',
    hardware_version text NOT NULL DEFAULT '',
    firmware_version text NOT NULL DEFAULT '',
    hardware_id text NOT NULL DEFAULT '',
    request_id text,
    version integer NOT NULL DEFAULT 1,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, device_id)
);
CREATE UNIQUE INDEX devices_request ON devices (user_id, request_id) WHERE request_id IS NOT NULL;

CREATE TABLE source_priorities (
    user_id uuid NOT NULL,
    default_order text[] NOT NULL DEFAULT '{}',
    metric_orders jsonb NOT NULL DEFAULT '{}'::jsonb,
    version integer NOT NULL DEFAULT 1,
    update_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id)
);

-- Samples, by month of start time: a TimescaleDB hypertable when the extension is installed and
-- preloaded, otherwise a natively partitioned table whose partitions ensure_sample_partitions (below)
-- creates on demand with the owner's rights. The natural key is the primary key, so a replayed write
-- is refused by ON CONFLICT DO NOTHING. Its column order (series, then time) also serves every
-- range read, so no other index has to be maintained on writes.
DO $$
DECLARE
    definition CONSTANT text := $columns$ (
        user_id uuid NOT NULL,
        metric smallint NOT NULL,
        hrv_method smallint NOT NULL DEFAULT 0,
        hrv_window_s integer NOT NULL DEFAULT 0,
        source_id text NOT NULL,
        start_time timestamptz NOT NULL,
        end_time timestamptz NOT NULL,
        sample_uid uuid NOT NULL,
        value double precision NOT NULL,
        utc_offset_s integer,
        device_id text,
        correlation_key text,
        metadata jsonb,
        import_job_id uuid,
        create_time timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (user_id, metric, hrv_method, start_time, hrv_window_s, source_id, end_time)
    ) $columns$;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       AND coalesce(current_setting('shared_preload_libraries', true), '') LIKE '%timescaledb%' THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        EXECUTE 'CREATE TABLE samples ' || definition;
        EXECUTE 'SELECT create_hypertable(''samples'', ''start_time'', chunk_time_interval => interval ''1 month'')';
    ELSE
        EXECUTE 'CREATE TABLE samples ' || definition || ' PARTITION BY RANGE (start_time)';
    END IF;
END;
$$;

CREATE FUNCTION ensure_sample_partitions(months date[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    month_start date;
    partition_name text;
    created integer := 0;
BEGIN
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = format('%I.samples', current_schema())::regclass) <> 'p' THEN
        -- A hypertable: TimescaleDB makes its chunks itself.
        RETURN 0;
    END IF;
    FOREACH month_start IN ARRAY months LOOP
        month_start := date_trunc('month', month_start)::date;
        partition_name := 'samples_' || to_char(month_start, 'YYYY_MM');
        IF to_regclass(format('%I.%I', current_schema(), partition_name)) IS NOT NULL THEN
            CONTINUE;
        END IF;
        PERFORM pg_advisory_xact_lock(hashtextextended('vitalis.ingestion.sample_partitions', 0));
        IF to_regclass(format('%I.%I', current_schema(), partition_name)) IS NOT NULL THEN
            CONTINUE;
        END IF;
        BEGIN
            EXECUTE format(
                'CREATE TABLE %I.%I PARTITION OF %I.samples FOR VALUES FROM (%L) TO (%L)',
                current_schema(), partition_name, current_schema(),
                (month_start::timestamp AT TIME ZONE 'UTC'),
                ((month_start + interval '1 month')::timestamp AT TIME ZONE 'UTC'));
        EXCEPTION WHEN duplicate_table THEN
            -- A concurrent writer created it after the check above.
            CONTINUE;
        END;
        EXECUTE format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY', current_schema(), partition_name);
        EXECUTE format('ALTER TABLE %I.%I FORCE ROW LEVEL SECURITY', current_schema(), partition_name);
        EXECUTE format(
            'CREATE POLICY %I ON %I.%I '
            'USING (user_id = NULLIF(current_setting(''app.current_user_id'', true), '''')::uuid) '
            'WITH CHECK (user_id = NULLIF(current_setting(''app.current_user_id'', true), '''')::uuid)',
            partition_name || '_owner', current_schema(), partition_name);
        created := created + 1;
    END LOOP;
    RETURN created;
END;
$$;
DO $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION ensure_sample_partitions(date[]) SET search_path = %I, pg_temp', current_schema());
END;
$$;

-- Sleep sessions, workouts, strength sessions, nutrition logs and manual entries: one table of
-- timed records, each idempotent by (collection, source, kind, start time).
CREATE TABLE records (
    user_id uuid NOT NULL,
    collection text NOT NULL,
    record_id uuid NOT NULL,
    source_id text NOT NULL,
    kind smallint NOT NULL DEFAULT 0,
    start_time timestamptz NOT NULL,
    end_time timestamptz NOT NULL,
    utc_offset_s integer,
    local_date date NOT NULL,
    body jsonb NOT NULL,
    import_job_id uuid,
    request_id text,
    version integer NOT NULL DEFAULT 1,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, collection, record_id)
);
CREATE UNIQUE INDEX records_natural_key ON records (user_id, collection, source_id, kind, start_time);
CREATE UNIQUE INDEX records_request ON records (user_id, collection, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX records_time ON records (user_id, collection, start_time);
CREATE INDEX records_day ON records (user_id, collection, local_date);

-- Import jobs; the same bytes (SHA-256) map to one job unless that job was cancelled.
CREATE TABLE import_jobs (
    user_id uuid NOT NULL,
    job_id uuid NOT NULL,
    format smallint NOT NULL,
    source_id text,
    document text NOT NULL DEFAULT '',
    file_name text NOT NULL DEFAULT '',
    size_bytes bigint NOT NULL DEFAULT 0,
    content_sha256 text NOT NULL,
    state smallint NOT NULL,
    cancel_requested boolean NOT NULL DEFAULT false,
    bytes_read bigint NOT NULL DEFAULT 0,
    counts jsonb NOT NULL DEFAULT '{}'::jsonb,
    error jsonb,
    request_id text,
    data_start_time timestamptz,
    data_end_time timestamptz,
    version integer NOT NULL DEFAULT 1,
    create_time timestamptz NOT NULL DEFAULT now(),
    start_time timestamptz,
    end_time timestamptz,
    update_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, job_id)
);
CREATE UNIQUE INDEX import_jobs_content ON import_jobs (user_id, content_sha256) WHERE state <> 5;
CREATE UNIQUE INDEX import_jobs_request ON import_jobs (user_id, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX import_jobs_recent ON import_jobs (user_id, create_time DESC, job_id);

DO $$
DECLARE
    table_name text;
BEGIN
    FOREACH table_name IN ARRAY ARRAY['sources', 'devices', 'source_priorities', 'samples', 'records', 'import_jobs']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', table_name);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', table_name);
        EXECUTE format(
            'CREATE POLICY %I ON %I '
            'USING (user_id = NULLIF(current_setting(''app.current_user_id'', true), '''')::uuid) '
            'WITH CHECK (user_id = NULLIF(current_setting(''app.current_user_id'', true), '''')::uuid)',
            table_name || '_owner', table_name);
    END LOOP;
END;
$$;
