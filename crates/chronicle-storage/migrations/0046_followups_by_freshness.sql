-- A claim also takes the patients whose queued readings are the most recent (the freshest
-- first), so a reading measured now is evaluated at once even behind a backlog.
CREATE INDEX ingest_followups_freshest_idx ON ingest_followups (consumer, last_measured_at DESC);
