-- A sign-up retried with the same request id returns the user the first attempt created.
ALTER TABLE users ADD COLUMN signup_request_id text;
