-- The inbox: one row per (consumer group, event) handled, so a redelivered event is applied once.
CREATE TABLE inbox (
    consumer_group text NOT NULL,
    event_id uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, event_id)
);

CREATE INDEX inbox_processed_at ON inbox (processed_at);

COMMENT ON TABLE inbox IS 'Events already applied by each consumer group of this schema.';
