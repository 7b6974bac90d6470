-- Workers take the oldest due job: an index in queue order lets that read stop at the first due,
-- unlocked row, where the index on (lease_until, enqueue_time) made every claim sort the whole
-- backlog.
CREATE INDEX parse_jobs_in_queue_order ON parse_jobs (enqueue_time);
DROP INDEX parse_jobs_due;
