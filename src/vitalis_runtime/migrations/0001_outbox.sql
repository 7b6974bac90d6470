-- The transactional outbox: events written in the same transaction as the change they announce,
-- published to Redis Streams by the relay in position order. An infrastructure table: the user an
-- event is about is in event_user_id, not user_id, because it is not under row-level security.
CREATE TABLE outbox (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL UNIQUE,
    event_type text NOT NULL,
    producer text NOT NULL,
    event_user_id uuid,
    payload bytea NOT NULL,
    headers jsonb NOT NULL DEFAULT '{}'::jsonb,
    occur_time timestamptz NOT NULL,
    published_at timestamptz
);

CREATE INDEX outbox_unpublished ON outbox (position) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;

COMMENT ON TABLE outbox IS 'Events waiting to be published (published_at IS NULL) and recently published ones.';
