-- Documents a user uploaded, the lab results extracted from them, and the parse queue.

CREATE TABLE documents (
    user_id uuid NOT NULL,
    document_id uuid NOT NULL,
    display_name text NOT NULL,
    description text NOT NULL DEFAULT '',
    kind smallint NOT NULL,
    content_type text NOT NULL,
    size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
    sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    storage_key text NOT NULL,
    page_count integer NOT NULL DEFAULT 0,
    parse_state smallint NOT NULL,
    parse_state_reason smallint NOT NULL DEFAULT 0,
    parse_state_message text NOT NULL DEFAULT '',
    parser_version text NOT NULL DEFAULT '',
    parse_time timestamptz,
    ocr_used boolean NOT NULL DEFAULT false,
    lab_name text NOT NULL DEFAULT '',
    collection_date date,
    panel text NOT NULL DEFAULT '',
    extracted_marker_count integer NOT NULL DEFAULT 0,
    review_pending_count integer NOT NULL DEFAULT 0,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    delete_time timestamptz,
    expire_time timestamptz,
    version bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (user_id, document_id),
    -- Dedup is per user: the same bytes of two users are two documents.
    UNIQUE (user_id, sha256)
);
CREATE INDEX documents_by_create_time ON documents (user_id, create_time DESC, document_id DESC);
CREATE INDEX documents_expiring ON documents (expire_time) WHERE expire_time IS NOT NULL;
ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE documents FORCE ROW LEVEL SECURITY;
CREATE POLICY documents_owner ON documents
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

CREATE TABLE extracted_markers (
    user_id uuid NOT NULL,
    document_id uuid NOT NULL,
    extracted_marker_id uuid NOT NULL,
    position integer NOT NULL,
    source_text text NOT NULL DEFAULT '',
    printed_name text NOT NULL DEFAULT '',
    biomarker text NOT NULL DEFAULT '',
    biomarker_display_name text NOT NULL DEFAULT '',
    loinc_code text NOT NULL DEFAULT '',
    value double precision,
    value_comparator smallint NOT NULL DEFAULT 0,
    value_text text NOT NULL DEFAULT '',
    unit text NOT NULL DEFAULT '',
    unit_text text NOT NULL DEFAULT '',
    flag smallint NOT NULL DEFAULT 0,
    range_low double precision,
    range_high double precision,
    range_text text NOT NULL DEFAULT '',
    collection_date date,
    page integer NOT NULL DEFAULT 0,
    bbox double precision[] NOT NULL DEFAULT '{0,0,0,0}',
    confidence_biomarker double precision NOT NULL DEFAULT 0,
    confidence_value double precision NOT NULL DEFAULT 0,
    confidence_unit double precision NOT NULL DEFAULT 0,
    confidence_flag double precision NOT NULL DEFAULT 0,
    confidence_range double precision NOT NULL DEFAULT 0,
    confidence_date double precision NOT NULL DEFAULT 0,
    confidence_overall double precision NOT NULL DEFAULT 0,
    review_state smallint NOT NULL,
    marker text NOT NULL DEFAULT '',
    review_time timestamptz,
    parser_version text NOT NULL DEFAULT '',
    create_time timestamptz NOT NULL DEFAULT now(),
    version bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (user_id, document_id, extracted_marker_id),
    FOREIGN KEY (user_id, document_id) REFERENCES documents (user_id, document_id) ON DELETE CASCADE
);
CREATE INDEX extracted_markers_in_order ON extracted_markers (user_id, document_id, position);
ALTER TABLE extracted_markers ENABLE ROW LEVEL SECURITY;
ALTER TABLE extracted_markers FORCE ROW LEVEL SECURITY;
CREATE POLICY extracted_markers_owner ON extracted_markers
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

-- The first result of a request carrying a request_id, returned again on a retry.
CREATE TABLE request_results (
    user_id uuid NOT NULL,
    request_id uuid NOT NULL,
    method text NOT NULL,
    document_id uuid NOT NULL,
    response bytea,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, request_id)
);
ALTER TABLE request_results ENABLE ROW LEVEL SECURITY;
ALTER TABLE request_results FORCE ROW LEVEL SECURITY;
CREATE POLICY request_results_owner ON request_results
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

-- Infrastructure, like the outbox: which documents wait for a parser. It holds identifiers only;
-- the parser reads the document itself in a transaction acting for its owner.
CREATE TABLE parse_jobs (
    document_id uuid PRIMARY KEY,
    owner_id uuid NOT NULL,
    enqueue_time timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz NOT NULL DEFAULT '-infinity',
    attempts integer NOT NULL DEFAULT 0
);
CREATE INDEX parse_jobs_due ON parse_jobs (lease_until, enqueue_time);

-- Infrastructure: soft-deleted documents to purge when they expire (identifiers only).
CREATE TABLE purge_schedule (
    document_id uuid PRIMARY KEY,
    owner_id uuid NOT NULL,
    purge_time timestamptz NOT NULL
);
CREATE INDEX purge_schedule_due ON purge_schedule (purge_time);
