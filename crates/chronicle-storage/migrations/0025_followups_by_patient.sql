-- A claim takes every queued item of the patients it picks, so one evaluation (or one rollup
-- round) covers all the commits queued for a patient rather than one commit at a time.
CREATE INDEX ingest_followups_patient_idx ON ingest_followups (consumer, patient_id);
