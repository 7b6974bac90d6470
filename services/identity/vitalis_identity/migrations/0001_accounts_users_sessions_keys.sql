-- Accounts, users, credentials, sessions with rotating refresh tokens, and signing keys.
-- Every user-owned table starts its primary key with user_id and has row-level security
-- enabled and forced; policies read the user id set with SET LOCAL by the unit of work.

CREATE TABLE accounts (
    account_id uuid PRIMARY KEY,
    display_name text NOT NULL,
    tier text NOT NULL DEFAULT 'free' CHECK (tier IN ('free', 'plus', 'clinic')),
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    user_id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (account_id),
    email text NOT NULL,
    given_name text NOT NULL DEFAULT '',
    family_name text NOT NULL DEFAULT '',
    birth_date date,
    sex text NOT NULL DEFAULT 'unspecified',
    time_zone text NOT NULL DEFAULT 'UTC',
    unit_system text NOT NULL DEFAULT 'metric',
    version bigint NOT NULL DEFAULT 1,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    delete_time timestamptz
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_account_idx ON users (account_id);

CREATE TABLE credentials (
    user_id uuid PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    password_hash text NOT NULL,
    update_time timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
    user_id uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    session_id uuid NOT NULL,
    user_agent text NOT NULL DEFAULT '',
    create_time timestamptz NOT NULL DEFAULT now(),
    expire_time timestamptz NOT NULL,
    revoke_time timestamptz,
    revoke_reason text,
    PRIMARY KEY (user_id, session_id)
);

CREATE TABLE refresh_tokens (
    user_id uuid NOT NULL,
    token_id uuid NOT NULL,
    session_id uuid NOT NULL,
    token_hash bytea NOT NULL,
    issue_time timestamptz NOT NULL DEFAULT now(),
    expire_time timestamptz NOT NULL,
    use_time timestamptz,
    PRIMARY KEY (user_id, token_id),
    FOREIGN KEY (user_id, session_id) REFERENCES sessions (user_id, session_id) ON DELETE CASCADE
);

-- Signing keys are platform-owned, not user data: no user_id, no RLS. Private keys are stored
-- encrypted with the service's key-encryption secret.
CREATE TABLE signing_keys (
    kid text PRIMARY KEY,
    algorithm text NOT NULL,
    private_key bytea NOT NULL,
    public_jwk jsonb NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    activate_time timestamptz NOT NULL,
    retire_time timestamptz NOT NULL
);

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
-- Sign-in finds a user by e-mail before the user id is known: the unit of work sets
-- app.lookup_email for that one statement's transaction, which reveals only that row.
CREATE POLICY users_owner ON users
    USING (
        user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid
        OR lower(email) = NULLIF(current_setting('app.lookup_email', true), '')
    )
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY accounts_member ON accounts
    USING (account_id IN (
        SELECT u.account_id FROM users u
        WHERE u.user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid
    ))
    WITH CHECK (true);

ALTER TABLE credentials ENABLE ROW LEVEL SECURITY;
ALTER TABLE credentials FORCE ROW LEVEL SECURITY;
CREATE POLICY credentials_owner ON credentials
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY sessions_owner ON sessions
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY refresh_tokens_owner ON refresh_tokens
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);
