-- Accounts with owners and tiers, soft delete, preferences, consents with history, share grants,
-- external identities, webhook deliveries, data-subject jobs and the append-only audit log.

-- Accounts: an owner, a billing e-mail, a version for etags and soft delete.
ALTER TABLE accounts DROP CONSTRAINT IF EXISTS accounts_tier_check;
UPDATE accounts SET tier = CASE tier WHEN 'plus' THEN 'premium' WHEN 'clinic' THEN 'professional' ELSE tier END;
ALTER TABLE accounts ADD CONSTRAINT accounts_tier_check CHECK (tier IN ('free', 'premium', 'professional'));
ALTER TABLE accounts
    ADD COLUMN owner_user_id uuid,
    ADD COLUMN billing_email text NOT NULL DEFAULT '',
    ADD COLUMN version bigint NOT NULL DEFAULT 1,
    ADD COLUMN delete_time timestamptz,
    ADD COLUMN expire_time timestamptz;
UPDATE accounts a SET owner_user_id = (SELECT u.user_id FROM users u WHERE u.account_id = a.account_id
                                       ORDER BY u.create_time LIMIT 1);

-- The back-office (billing) reaches one account by id: the unit of work sets app.lookup_account
-- for that transaction, which reveals only that row.
DROP POLICY accounts_member ON accounts;
CREATE POLICY accounts_member ON accounts
    USING (
        account_id IN (
            SELECT u.account_id FROM users u
            WHERE u.user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid
        )
        OR account_id = NULLIF(current_setting('app.lookup_account', true), '')::uuid
    )
    WITH CHECK (true);

-- Users: soft delete with an erasure deadline, verified e-mail, session sign-in method.
ALTER TABLE users
    ADD COLUMN expire_time timestamptz,
    ADD COLUMN email_verified boolean NOT NULL DEFAULT false;
ALTER TABLE sessions
    ADD COLUMN auth_method text NOT NULL DEFAULT 'password',
    ADD COLUMN client_ip text NOT NULL DEFAULT '',
    ADD COLUMN last_refresh_time timestamptz;
-- Revocation reasons become an enumeration.
UPDATE sessions SET revoke_reason = CASE revoke_reason
    WHEN 'refresh token reused' THEN 'refresh_token_reuse'
    WHEN 'signed out' THEN 'sign_out'
    ELSE revoke_reason END;

CREATE TABLE preferences (
    user_id uuid PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    language_code text NOT NULL DEFAULT 'en-US',
    first_day_of_week integer NOT NULL DEFAULT 1,
    unit_overrides jsonb NOT NULL DEFAULT '{}',
    alert_push_enabled boolean NOT NULL DEFAULT true,
    alert_email_enabled boolean NOT NULL DEFAULT false,
    weekly_summary_email_enabled boolean NOT NULL DEFAULT false,
    quiet_hours_start time,
    quiet_hours_end time,
    version bigint NOT NULL DEFAULT 1,
    update_time timestamptz NOT NULL DEFAULT now()
);
INSERT INTO preferences (user_id) SELECT user_id FROM users;

CREATE TABLE consents (
    user_id uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    consent_type text NOT NULL,
    granted boolean NOT NULL,
    version text NOT NULL,
    grant_time timestamptz NOT NULL,
    revoke_time timestamptz,
    update_time timestamptz NOT NULL DEFAULT now(),
    revision bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (user_id, consent_type)
);

CREATE TABLE consent_events (
    user_id uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    event_id uuid NOT NULL,
    consent_type text NOT NULL,
    action text NOT NULL CHECK (action IN ('grant', 'revoke')),
    version text NOT NULL,
    occur_time timestamptz NOT NULL DEFAULT clock_timestamp(),
    user_agent text NOT NULL DEFAULT '',
    client_ip text NOT NULL DEFAULT '',
    request_id text,
    PRIMARY KEY (user_id, event_id)
);
CREATE UNIQUE INDEX consent_events_request_key ON consent_events (user_id, request_id);
CREATE INDEX consent_events_time_idx ON consent_events (user_id, occur_time DESC, event_id DESC);

CREATE TABLE share_grants (
    user_id uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    grant_id uuid NOT NULL,
    grantee_id uuid NOT NULL,
    grantee_email text NOT NULL,
    grantee_display_name text NOT NULL DEFAULT '',
    owner_display_name text NOT NULL DEFAULT '',
    scopes text[] NOT NULL,
    expire_time timestamptz NOT NULL,
    note text NOT NULL DEFAULT '',
    create_time timestamptz NOT NULL DEFAULT clock_timestamp(),
    revoke_time timestamptz,
    version bigint NOT NULL DEFAULT 1,
    request_id text,
    PRIMARY KEY (user_id, grant_id)
);
CREATE UNIQUE INDEX share_grants_request_key ON share_grants (user_id, request_id);
CREATE INDEX share_grants_grantee_idx ON share_grants (grantee_id, user_id);

CREATE TABLE external_identities (
    user_id uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    issuer text NOT NULL,
    subject text NOT NULL,
    provider text NOT NULL,
    link_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, issuer, subject)
);
CREATE UNIQUE INDEX external_identities_subject_key ON external_identities (issuer, subject);

-- Platform data: which webhook deliveries were applied (their svix-id), kept for replay defence.
-- No personal data: the message id and when it arrived.
CREATE TABLE webhook_deliveries (
    provider text NOT NULL,
    message_id text NOT NULL,
    event_type text NOT NULL,
    receive_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, message_id)
);

CREATE TABLE export_jobs (
    user_id uuid NOT NULL,
    job_id uuid NOT NULL,
    state text NOT NULL DEFAULT 'pending',
    services jsonb NOT NULL DEFAULT '[]',
    archive bytea,
    archive_size_bytes bigint NOT NULL DEFAULT 0,
    archive_sha256 text NOT NULL DEFAULT '',
    create_time timestamptz NOT NULL DEFAULT clock_timestamp(),
    start_time timestamptz,
    end_time timestamptz,
    expire_time timestamptz,
    error jsonb,
    request_id text,
    PRIMARY KEY (user_id, job_id)
);
CREATE UNIQUE INDEX export_jobs_request_key ON export_jobs (user_id, request_id);

-- The erasure job is the tombstone that outlives the user: no foreign key to users.
CREATE TABLE erasure_jobs (
    user_id uuid NOT NULL,
    job_id uuid NOT NULL,
    state text NOT NULL DEFAULT 'pending',
    trigger text NOT NULL,
    services jsonb NOT NULL DEFAULT '[]',
    create_time timestamptz NOT NULL DEFAULT clock_timestamp(),
    start_time timestamptz,
    end_time timestamptz,
    error jsonb,
    request_id text,
    PRIMARY KEY (user_id, job_id)
);
CREATE UNIQUE INDEX erasure_jobs_request_key ON erasure_jobs (user_id, request_id);

-- Platform data: the queue of data-subject jobs for the runner. It holds only pointers (job kind,
-- job id, subject id), so any replica can claim work before it knows whose data it is.
CREATE TABLE data_rights_queue (
    job_id uuid PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('export', 'erasure')),
    subject_id uuid NOT NULL,
    run_after timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0
);

CREATE TABLE audit_log (
    user_id uuid NOT NULL,
    entry_id text NOT NULL,
    insert_id text NOT NULL,
    occur_time timestamptz NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    service text NOT NULL,
    method text NOT NULL,
    resource text NOT NULL,
    share_grant text NOT NULL DEFAULT '',
    client_ip text NOT NULL DEFAULT '',
    user_agent text NOT NULL DEFAULT '',
    request_id text NOT NULL DEFAULT '',
    trace_id text NOT NULL DEFAULT '',
    status_code integer NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, entry_id)
);
CREATE UNIQUE INDEX audit_log_insert_key ON audit_log (user_id, insert_id);

-- Append-only: whatever privileges the application role holds, a row never changes or goes.
CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();

ALTER TABLE preferences ENABLE ROW LEVEL SECURITY;
ALTER TABLE preferences FORCE ROW LEVEL SECURITY;
CREATE POLICY preferences_owner ON preferences
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

ALTER TABLE consents ENABLE ROW LEVEL SECURITY;
ALTER TABLE consents FORCE ROW LEVEL SECURITY;
CREATE POLICY consents_owner ON consents
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

ALTER TABLE consent_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE consent_events FORCE ROW LEVEL SECURITY;
CREATE POLICY consent_events_owner ON consent_events
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

-- The grantee sees the grants they received (read-only); only the owner writes them.
ALTER TABLE share_grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE share_grants FORCE ROW LEVEL SECURITY;
CREATE POLICY share_grants_read ON share_grants FOR SELECT
    USING (
        user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid
        OR grantee_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid
    );
CREATE POLICY share_grants_owner_insert ON share_grants FOR INSERT
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);
CREATE POLICY share_grants_owner_update ON share_grants FOR UPDATE
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);
-- A grantee may drop a grant they received (erasure of the grantee removes them).
CREATE POLICY share_grants_party_delete ON share_grants FOR DELETE
    USING (
        user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid
        OR grantee_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid
    );

-- A webhook or an external token names a subject before the user is known: the unit of work
-- sets app.lookup_external to 'issuer|subject' for that transaction, which reveals only that row.
ALTER TABLE external_identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE external_identities FORCE ROW LEVEL SECURITY;
CREATE POLICY external_identities_owner ON external_identities
    USING (
        user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid
        OR issuer || '|' || subject = NULLIF(current_setting('app.lookup_external', true), '')
    )
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

ALTER TABLE export_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE export_jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY export_jobs_owner ON export_jobs
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

ALTER TABLE erasure_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE erasure_jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY erasure_jobs_owner ON erasure_jobs
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_log_read ON audit_log FOR SELECT
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);
CREATE POLICY audit_log_append ON audit_log FOR INSERT
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

-- Signing keys can be revoked by an operator, and a manual rotation is idempotent per request id.
ALTER TABLE signing_keys
    ADD COLUMN revoke_time timestamptz,
    ADD COLUMN request_id text UNIQUE;
