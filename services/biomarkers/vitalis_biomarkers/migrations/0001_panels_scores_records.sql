-- The biomarkers service's user-owned tables. Every table's primary key starts with user_id and
-- row-level security is enabled and forced with an owner policy reading app.current_user_id.

CREATE TABLE panels (
    user_id uuid NOT NULL,
    panel_id uuid NOT NULL,
    display_name text NOT NULL DEFAULT '',
    collection_time timestamptz NOT NULL,
    utc_offset_seconds integer,
    report_time timestamptz,
    fasting smallint NOT NULL DEFAULT 0,
    lab_name text NOT NULL DEFAULT '',
    note text NOT NULL DEFAULT '',
    provenance jsonb NOT NULL,
    -- The document or FHIR resource the panel came from: one panel per source.
    source_key text,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    version integer NOT NULL DEFAULT 1,
    PRIMARY KEY (user_id, panel_id)
);
CREATE UNIQUE INDEX panels_one_per_source ON panels (user_id, source_key) WHERE source_key IS NOT NULL;
CREATE INDEX panels_by_collection_time ON panels (user_id, collection_time DESC, panel_id DESC);

CREATE TABLE markers (
    user_id uuid NOT NULL,
    marker_id uuid NOT NULL,
    panel_id uuid NOT NULL,
    position integer NOT NULL,
    biomarker_id text NOT NULL,
    reported_name text NOT NULL DEFAULT '',
    value double precision NOT NULL,
    comparator smallint NOT NULL DEFAULT 0,
    reported_value text NOT NULL DEFAULT '',
    reported_unit text NOT NULL,
    canonical_value double precision,
    canonical_unit text NOT NULL,
    lab_low double precision,
    lab_high double precision,
    lab_text text NOT NULL DEFAULT '',
    reported_flag text NOT NULL DEFAULT '',
    flag smallint NOT NULL,
    flag_basis smallint NOT NULL,
    optimal_status smallint NOT NULL,
    provenance jsonb,
    note text NOT NULL DEFAULT '',
    dictionary_version text NOT NULL,
    -- The panel's collection time, kept here so that a biomarker's history is one index scan.
    collection_time timestamptz NOT NULL,
    extracted_marker text NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, marker_id),
    FOREIGN KEY (user_id, panel_id) REFERENCES panels (user_id, panel_id) ON DELETE CASCADE,
    UNIQUE (user_id, panel_id, biomarker_id)
);
CREATE INDEX markers_of_panel ON markers (user_id, panel_id, position);
CREATE INDEX markers_history ON markers (user_id, biomarker_id, collection_time DESC, marker_id DESC);
CREATE INDEX markers_by_collection_time ON markers (user_id, collection_time DESC, marker_id DESC);

CREATE TABLE scores (
    user_id uuid NOT NULL,
    score_id uuid NOT NULL,
    formula_id text NOT NULL,
    formula_version text NOT NULL,
    coefficient_set text NOT NULL,
    value double precision NOT NULL,
    unit text NOT NULL,
    status smallint NOT NULL,
    issues jsonb NOT NULL DEFAULT '[]'::jsonb,
    inputs jsonb NOT NULL,
    intermediates jsonb NOT NULL DEFAULT '{}'::jsonb,
    age_at_sample_years double precision,
    sample_time timestamptz NOT NULL,
    -- The panel most inputs came from; kept after the panel is deleted, for history.
    panel_id uuid NOT NULL,
    state smallint NOT NULL,
    superseded_by uuid,
    trigger smallint NOT NULL,
    compute_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, score_id)
);
CREATE INDEX scores_by_sample_time ON scores (user_id, sample_time DESC, compute_time DESC, score_id DESC);
CREATE UNIQUE INDEX scores_one_current ON scores (user_id, panel_id, formula_id, formula_version, coefficient_set)
    WHERE state = 1;

CREATE TABLE body_composition_scans (
    user_id uuid NOT NULL,
    scan_id uuid NOT NULL,
    scan_time timestamptz NOT NULL,
    -- The scan's fields in the protobuf JSON encoding, without name, times and etag.
    document jsonb NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    version integer NOT NULL DEFAULT 1,
    PRIMARY KEY (user_id, scan_id)
);
CREATE INDEX body_composition_scans_by_time ON body_composition_scans (user_id, scan_time DESC, scan_id DESC);

CREATE TABLE epigenetic_tests (
    user_id uuid NOT NULL,
    test_id uuid NOT NULL,
    collection_time timestamptz NOT NULL,
    document jsonb NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    version integer NOT NULL DEFAULT 1,
    PRIMARY KEY (user_id, test_id)
);
CREATE INDEX epigenetic_tests_by_time ON epigenetic_tests (user_id, collection_time DESC, test_id DESC);

-- Idempotent requests: what a request id produced, so a retry returns it instead of acting again.
CREATE TABLE request_results (
    user_id uuid NOT NULL,
    method text NOT NULL,
    request_id text NOT NULL,
    resource text NOT NULL DEFAULT '',
    response bytea,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, method, request_id)
);

ALTER TABLE panels ENABLE ROW LEVEL SECURITY;
ALTER TABLE panels FORCE ROW LEVEL SECURITY;
CREATE POLICY panels_owner ON panels
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

ALTER TABLE markers ENABLE ROW LEVEL SECURITY;
ALTER TABLE markers FORCE ROW LEVEL SECURITY;
CREATE POLICY markers_owner ON markers
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

ALTER TABLE scores ENABLE ROW LEVEL SECURITY;
ALTER TABLE scores FORCE ROW LEVEL SECURITY;
CREATE POLICY scores_owner ON scores
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

ALTER TABLE body_composition_scans ENABLE ROW LEVEL SECURITY;
ALTER TABLE body_composition_scans FORCE ROW LEVEL SECURITY;
CREATE POLICY body_composition_scans_owner ON body_composition_scans
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

ALTER TABLE epigenetic_tests ENABLE ROW LEVEL SECURITY;
ALTER TABLE epigenetic_tests FORCE ROW LEVEL SECURITY;
CREATE POLICY epigenetic_tests_owner ON epigenetic_tests
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

ALTER TABLE request_results ENABLE ROW LEVEL SECURITY;
ALTER TABLE request_results FORCE ROW LEVEL SECURITY;
CREATE POLICY request_results_owner ON request_results
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);
