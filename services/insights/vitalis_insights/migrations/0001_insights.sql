-- The insights engine's state: insights and their change log (for watches), alerts, goals, the
-- per-user derived series the rules read (fed by events), narratives and coach conversations.
-- Every table is user-owned: its primary key starts with user_id, row-level security is enabled
-- and forced, and the policy reads the user id the unit of work set with SET LOCAL.

CREATE TABLE insights (
    user_id uuid NOT NULL,
    insight_id uuid NOT NULL,
    rule text NOT NULL,
    rule_version integer NOT NULL,
    category integer NOT NULL,
    severity integer NOT NULL,
    title text NOT NULL,
    summary text NOT NULL,
    series jsonb,
    observed jsonb,
    expected_range jsonb,
    evidence jsonb NOT NULL DEFAULT '[]'::jsonb,
    dedupe_key text NOT NULL,
    period_start timestamptz,
    period_end timestamptz,
    state integer NOT NULL DEFAULT 1,
    alert_id uuid,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    read_time timestamptz,
    dismiss_time timestamptz,
    version bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (user_id, insight_id),
    UNIQUE (user_id, dedupe_key)
);
CREATE INDEX insights_feed_idx ON insights (user_id, create_time DESC, insight_id DESC);

-- One row per stored change of an insight, in commit order per user: what a watch replays.
CREATE TABLE insight_changes (
    user_id uuid NOT NULL,
    change_seq bigserial NOT NULL,
    insight_id uuid NOT NULL,
    change_kind integer NOT NULL,
    change_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, change_seq)
);

CREATE TABLE alerts (
    user_id uuid NOT NULL,
    alert_id uuid NOT NULL,
    insight_id uuid NOT NULL,
    rule text NOT NULL,
    severity integer NOT NULL,
    title text NOT NULL,
    summary text NOT NULL,
    state integer NOT NULL DEFAULT 1,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    acknowledge_time timestamptz,
    snooze_expire_time timestamptz,
    version bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (user_id, alert_id),
    UNIQUE (user_id, insight_id)
);
CREATE INDEX alerts_list_idx ON alerts (user_id, create_time DESC, alert_id DESC);

CREATE TABLE goals (
    user_id uuid NOT NULL,
    goal_id text NOT NULL,
    display_name text NOT NULL,
    series jsonb NOT NULL,
    series_key text NOT NULL,
    direction integer NOT NULL,
    target_value double precision,
    target_low double precision,
    target_high double precision,
    unit text NOT NULL,
    evaluation_window_days integer NOT NULL DEFAULT 7,
    start_date date NOT NULL,
    deadline date,
    state integer NOT NULL DEFAULT 1,
    progress jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id uuid,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    version bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (user_id, goal_id)
);
CREATE UNIQUE INDEX goals_request_idx ON goals (user_id, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX goals_series_idx ON goals (user_id, series_key);

-- The derived series the rules need, one value per (series, day or measurement), fed by events
-- and the producing services' contracts; never read from another service's tables.
CREATE TABLE series_values (
    user_id uuid NOT NULL,
    series_key text NOT NULL,
    observe_time timestamptz NOT NULL,
    value double precision NOT NULL,
    unit text NOT NULL,
    evidence text NOT NULL,
    update_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, series_key, observe_time)
);

CREATE TABLE narratives (
    user_id uuid NOT NULL,
    narrative_id uuid NOT NULL,
    kind integer NOT NULL,
    period_start timestamptz,
    period_end timestamptz,
    title text NOT NULL,
    body text NOT NULL,
    facts jsonb NOT NULL DEFAULT '[]'::jsonb,
    generator jsonb NOT NULL,
    language_code text NOT NULL,
    request_id uuid,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, narrative_id)
);
CREATE UNIQUE INDEX narratives_request_idx ON narratives (user_id, request_id) WHERE request_id IS NOT NULL;

CREATE TABLE conversations (
    user_id uuid NOT NULL,
    conversation_id uuid NOT NULL,
    title text NOT NULL,
    message_count integer NOT NULL DEFAULT 0,
    replying boolean NOT NULL DEFAULT false,
    request_id uuid,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    version bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (user_id, conversation_id)
);
CREATE UNIQUE INDEX conversations_request_idx ON conversations (user_id, request_id)
    WHERE request_id IS NOT NULL;

CREATE TABLE messages (
    user_id uuid NOT NULL,
    conversation_id uuid NOT NULL,
    message_seq integer NOT NULL,
    role integer NOT NULL,
    text text NOT NULL,
    facts jsonb NOT NULL DEFAULT '[]'::jsonb,
    generator jsonb,
    state integer NOT NULL,
    request_id uuid,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, conversation_id, message_seq),
    FOREIGN KEY (user_id, conversation_id) REFERENCES conversations (user_id, conversation_id)
        ON DELETE CASCADE
);
CREATE UNIQUE INDEX messages_request_idx ON messages (user_id, conversation_id, request_id, role)
    WHERE request_id IS NOT NULL;

ALTER TABLE insights ENABLE ROW LEVEL SECURITY;
ALTER TABLE insights FORCE ROW LEVEL SECURITY;
CREATE POLICY insights_owner ON insights
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

ALTER TABLE insight_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE insight_changes FORCE ROW LEVEL SECURITY;
CREATE POLICY insight_changes_owner ON insight_changes
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

ALTER TABLE alerts ENABLE ROW LEVEL SECURITY;
ALTER TABLE alerts FORCE ROW LEVEL SECURITY;
CREATE POLICY alerts_owner ON alerts
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

ALTER TABLE goals ENABLE ROW LEVEL SECURITY;
ALTER TABLE goals FORCE ROW LEVEL SECURITY;
CREATE POLICY goals_owner ON goals
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

ALTER TABLE series_values ENABLE ROW LEVEL SECURITY;
ALTER TABLE series_values FORCE ROW LEVEL SECURITY;
CREATE POLICY series_values_owner ON series_values
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

ALTER TABLE narratives ENABLE ROW LEVEL SECURITY;
ALTER TABLE narratives FORCE ROW LEVEL SECURITY;
CREATE POLICY narratives_owner ON narratives
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversations FORCE ROW LEVEL SECURITY;
CREATE POLICY conversations_owner ON conversations
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);

ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;
CREATE POLICY messages_owner ON messages
    USING (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.current_user_id', true), '')::uuid);
