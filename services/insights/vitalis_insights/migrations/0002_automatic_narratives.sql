-- Narratives the engine writes by itself (the weekly summary): at most one per user, kind and period.
ALTER TABLE narratives ADD COLUMN automatic boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX narratives_automatic_idx ON narratives (user_id, kind, period_start) WHERE automatic;
